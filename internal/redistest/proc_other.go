//go:build !linux

package redistest

import "syscall"

// childAttr starts redis-server with default attributes where the kernel cannot kill it
// along with the test binary.
func childAttr() *syscall.SysProcAttr { return nil }
