package redistest

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

func ping(s *Server, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.Client().Ping(ctx).Err()
}

func TestStopRestartPauseResume(t *testing.T) {
	s := Start(t)
	client := s.Client()
	ctx := context.Background()
	if err := client.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	s.Pause()
	// A paused server accepts the connection but never answers; the client gives up at its
	// context deadline only when the deadline reaches the socket, so wait in a goroutine.
	answered := make(chan error, 1)
	go func() { answered <- client.Get(ctx, "k").Err() }()
	select {
	case err := <-answered:
		t.Fatalf("paused server answered: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	s.Resume()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("after Resume: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("resumed server did not answer within 5s")
	}

	pid := s.cmd.Process.Pid
	s.Stop()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("redis-server %d still exists after Stop: kill -0 gave %v", pid, err)
	}
	if _, err := os.Stat(s.Socket()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket still there after Stop: %v", err)
	}
	if err := ping(s, 300*time.Millisecond); err == nil {
		t.Fatal("stopped server answered PING")
	}
	s.Stop() // a second Stop does nothing

	s.Restart()
	if err := ping(s, time.Second); err != nil {
		t.Fatalf("restarted server: %v", err)
	}
	if n, err := client.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("restarted server kept data: exists=%d err=%v", n, err)
	}
	if s.URL() != "unix://"+s.Addr() {
		t.Fatalf("URL %q does not name Addr %q", s.URL(), s.Addr())
	}
}
