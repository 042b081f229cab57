// Command chat is a small Socket.IO chat server whose event handlers are rate-limited by
// limitgen: see client.go for the //limit:socketio directives and client_limited.go for the
// wrappers generated from them.
//
// Usage:
//
//	chat [-addr 127.0.0.1:3000] [-addr-file PATH] [-debug] [-timeout 50ms]
//
// It counts in memory, or in Redis when REDIS_URL is set, so that several instances share
// one limit. Once it accepts connections it prints "listening on HOST:PORT" to stdout; it
// logs to stderr and stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	runtime "github.com/limitgen/limitgen/runtime"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

func main() {
	if err := run(); err != nil {
		slog.Error("chat server failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:3000",
		"TCP `address` to listen on; port 0 picks a free one")
	addrFile := flag.String("addr-file", "", "write the address listened on to this `file`")
	debug := flag.Bool("debug", false, "log every denied call")
	timeout := flag.Duration("timeout", 50*time.Millisecond,
		"how long a decision may wait for Redis before the failure policy makes it")
	flag.Parse()

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	lim, err := runtime.FromEnv(runtime.WithLogger(log), runtime.WithTimeout(*timeout))
	if err != nil {
		return fmt.Errorf("set up limiter: %w", err)
	}
	store := "memory"
	if os.Getenv("REDIS_URL") != "" {
		store = "redis"
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()

	io := socket.NewServer(nil, nil)
	hub := newHub(200)
	// The handlers are registered in a middleware, which runs before the server tells the
	// client it is connected; a "connection" handler runs only after that, concurrently
	// with the client's first packets. Even so, the server library (v3.0.6) tells the
	// client it is connected an instant before it can route the client's packets, and
	// closes a connection whose event arrives in that instant. So the server says
	// "welcome" once it is ready, and clients wait for it before they emit.
	io.Use(func(sock *socket.Socket, next func(*socket.ExtendedError)) {
		c := newClient(sock, hub, log)
		c.register(lim)
		c.log.Info("client connected")
		next(nil)
	})
	err = io.On("connection", func(args ...any) {
		if sock, ok := args[0].(*socket.Socket); ok {
			if err := sock.Emit("welcome", map[string]any{"socket": string(sock.Id())}); err != nil {
				log.Error("send welcome", "err", err)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("register the connection handler: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", io.ServeHandler(nil))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	bound := ln.Addr().String()
	if *addrFile != "" {
		if err := writeFileAtomic(*addrFile, bound+"\n"); err != nil {
			return fmt.Errorf("write address file: %w", err)
		}
	}
	log.Info("chat server started", "addr", bound, "store", store)
	fmt.Printf("listening on %s\n", bound)

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	io.Close(nil)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down http server: %w", err)
	}
	log.Info("stopped")
	return nil
}

// writeFileAtomic writes content to path through a temporary file and a rename, so that a
// reader polling for path never sees it half written.
func writeFileAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
