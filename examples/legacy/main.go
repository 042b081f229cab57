// Command legacy is the chat example on github.com/googollee/go-socket.io, the older Go
// Socket.IO server that speaks to socket.io-client 1.x and 2.x: see app.go for the
// //limit:socketio directives and app_limited.go for the wrappers generated from them.
// go-socket.io finds a handler's argument and ack types by reflection; the generated
// wrappers have the handlers' exact signatures, so it sees no difference.
//
// Usage:
//
//	legacy [-addr 127.0.0.1:3000] [-debug] [-timeout 50ms]
//
// It counts in memory, or in Redis when REDIS_URL is set. Once it accepts connections it
// prints "listening on HOST:PORT" to stdout; it logs to stderr and stops cleanly on SIGINT
// or SIGTERM.
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

	socketio "github.com/googollee/go-socket.io"
	"github.com/limitgen/limitgen/runtime"
)

func main() {
	if err := run(); err != nil {
		slog.Error("legacy chat server failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:3000",
		"TCP `address` to listen on; port 0 picks a free one")
	debug := flag.Bool("debug", false, "log every denied call")
	timeout := flag.Duration("timeout", 50*time.Millisecond,
		"how long a decision may wait for Redis before the failure policy makes it")
	flag.Parse()

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	lim, err := runtime.FromEnv(runtime.WithLogger(log), runtime.WithTimeout(*timeout))
	if err != nil {
		return fmt.Errorf("set up the limiter (check REDIS_URL): %w", err)
	}
	defer lim.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()

	server := socketio.NewServer(nil)
	newApp(server, log).register(lim)
	served := make(chan error, 2)
	go func() { served <- server.Serve() }()
	defer server.Close()

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", server)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { served <- srv.Serve(ln) }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("legacy chat server started", "addr", ln.Addr().String())
	fmt.Printf("listening on %s\n", ln.Addr())

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down the http server: %w", err)
	}
	log.Info("stopped")
	return nil
}
