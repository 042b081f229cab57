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
	"os"
	"os/exec"
	"path/filepath"
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

// Start starts a redis-server and stops it when t ends.
func Start(t testing.TB) *Server {
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

	s := &Server{t: t, dir: dir, socket: filepath.Join(dir, "redis.sock")}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", "0", "--unixsocket", s.socket,
		"--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", s.dir,
		"--daemonize", "no", "--logfile", filepath.Join(s.dir, "redis.log"))
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
