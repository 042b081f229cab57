package redistest

import "syscall"

// childAttr has the kernel kill redis-server when the test binary dies without running its
// cleanups (a -timeout panic, a kill), so that no server outlives its test.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
