// Package redistest starts real redis-server processes for tests: on a unix socket in a
// private temporary directory, without persistence, stopped when the test ends.
//
// A Server can be stopped, restarted on the same socket, and paused (SIGSTOP) so that it
// accepts connections but answers nothing, which is how fault tests make Redis go away and
// come back without the clients noticing a new address.
//
// When redis-server is not on PATH the test is skipped with a message saying how to install
// it, unless LIMITGEN_REQUIRE_SERVICES=1, as in CI, where it fails instead.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process owned by a test.
type Server struct {
	t      testing.TB
	dir    string
	socket string
	port   int      // TCP port on 127.0.0.1, or 0 for the unix socket only
	conf   string   // a configuration file, the first argument, or ""
	args   []string // more redis-server arguments
	cmd    *exec.Cmd
	exited chan struct{}
}

// Require skips t, or fails it when LIMITGEN_REQUIRE_SERVICES=1, with why and how to fix it.
func Require(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("LIMITGEN_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s (LIMITGEN_REQUIRE_SERVICES=1, so this fails instead of skipping)", msg)
	}
	t.Skip(msg)
}

// Start starts a redis-server listening on a unix socket only, and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, 0)
}

// StartTCP starts a redis-server that also listens on a free TCP port of 127.0.0.1 (see
// TCPAddr), and stops it when t ends.
func StartTCP(t testing.TB) *Server {
	t.Helper()
	return start(t, freePort(t, 0))
}

// start starts a server on port of 127.0.0.1 (none when 0) and its unix socket, with more
// redis-server arguments.
func start(t testing.TB, port int, args ...string) *Server {
	t.Helper()
	return startConf(t, port, nil, args...)
}

// startConf is start with a configuration file whose content conf returns given the
// server's directory; nil means none.
func startConf(t testing.TB, port int, conf func(dir string) string, args ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		Require(t, "redis-server not found on PATH; install it (apt-get install redis-server)")
	}
	// A short directory: unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "lgredis")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	s := &Server{t: t, dir: dir, socket: filepath.Join(dir, "redis.sock"), port: port,
		args: args}
	if conf != nil {
		s.conf = filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(s.conf, []byte(conf(dir)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// FreeAddr returns a 127.0.0.1:port address that nothing listens on now, for tests of
// clients that cannot connect.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, 0)))
}

// freePort returns a TCP port of 127.0.0.1 that nothing listens on now, and such that
// port+above is free too (Redis Cluster's bus listens on port+10000).
func freePort(t testing.TB, above int) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("redistest: finding a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if above == 0 {
			l.Close()
			return port
		}
		if port+above > 65535 {
			l.Close()
			continue
		}
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+above))
		l.Close()
		if err == nil {
			l2.Close()
			return port
		}
	}
	t.Fatalf("redistest: no free port p with p+%d free after 100 tries", above)
	return 0
}

func (s *Server) start() {
	s.t.Helper()
	args := []string{"--port", strconv.Itoa(s.port), "--unixsocket", s.socket,
		"--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", s.dir,
		"--daemonize", "no", "--logfile", filepath.Join(s.dir, "redis.log")}
	if s.port != 0 {
		args = append(args, "--bind", "127.0.0.1")
	}
	if s.conf != "" {
		args = append([]string{s.conf}, args...)
	}
	s.cmd = exec.Command("redis-server", append(args, s.args...)...)
	s.cmd.SysProcAttr = childAttr()
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	exited := make(chan struct{})
	s.exited = exited
	go func(cmd *exec.Cmd) { cmd.Wait(); close(exited) }(s.cmd)

	client := redis.NewClient(&redis.Options{Network: "unix", Addr: s.socket})
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := client.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redis-server exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("redis-server did not answer PING within 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is the server's address as go-redis takes it with Network "unix": the socket's path.
func (s *Server) Addr() string { return s.socket }

// TCPAddr is the server's 127.0.0.1:port address; it is empty for a server started by
// Start, which listens on its unix socket only.
func (s *Server) TCPAddr() string {
	if s.port == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Dir is the server's private directory, for files a test puts beside it.
func (s *Server) Dir() string { return s.dir }

// Log is what the server wrote to its log file so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return string(b)
}

// FlushScripts empties the server's script cache (SCRIPT FLUSH), as a restart or a
// failover to a replica does: the next EVALSHA of any script fails with NOSCRIPT.
func (s *Server) FlushScripts() {
	s.t.Helper()
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: s.socket})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		s.t.Fatalf("redistest: SCRIPT FLUSH: %v", err)
	}
}

// Socket is the path of the server's unix socket.
func (s *Server) Socket() string { return s.socket }

// URL is a REDIS_URL for the server.
func (s *Server) URL() string { return "unix://" + s.socket }

// Client returns a new client of the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: s.socket})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Stop kills the server and waits for it to exit. Stopping a stopped server does nothing.
// A paused server is killed all the same.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
	os.Remove(s.socket)
}

// Pause freezes the server with SIGSTOP: connections stay open and new ones are accepted
// by the kernel, but no command is answered until Resume.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
}

// Resume lets a paused server run again with all its data.
func (s *Server) Resume() {
	s.t.Helper()
	s.signal(syscall.SIGCONT)
}

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatalf("redistest: %v sent to a stopped server", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: sending %v to redis-server: %v", sig, err)
	}
}

// Restart starts the server again on the same socket, with no data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}
