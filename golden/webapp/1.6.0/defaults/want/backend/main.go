// Command server is the defaults backend: a JSON API over PostgreSQL,
// with health, readiness and Prometheus metrics endpoints.
//
// Usage:
//
//	server              serve HTTP on $PORT until SIGTERM or SIGINT
//	server migrate      apply the pending migrations and exit
//	server healthcheck  exit 0 when the local server answers /healthz, else 1
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `usage: server [migrate|healthcheck]

  (no command)  serve HTTP on $PORT until SIGTERM or SIGINT
  migrate       apply the pending migrations and exit
  healthcheck   exit 0 when the local server answers /healthz, else 1

Configuration comes from the environment; see README.md.
`

// run executes the command in args and returns the process exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	if len(args) > 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch cmd {
	case "", "migrate":
	case "healthcheck":
		// Needs only PORT, so it works however the rest is configured.
		if err := healthcheck(getenv("PORT")); err != nil {
			fmt.Fprintln(stderr, "healthcheck:", err)
			return 1
		}
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return 2
	}

	cfg, err := loadConfig(getenv)
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	slog.SetDefault(logger)
	if err != nil {
		logger.Error("invalid configuration", "error", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if cmd == "migrate" {
		err = migrateCommand(ctx, cfg, logger)
	} else {
		err = serve(ctx, stop, cfg, logger)
	}
	if err != nil {
		logger.Error("exiting", "error", err)
		return 1
	}
	return 0
}

// migrateCommand applies the pending migrations.
func migrateCommand(ctx context.Context, cfg Config, logger *slog.Logger) error {
	db, err := openDB(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	return migrate(ctx, db, migrationsDir(cfg.MigrationsDir), logger)
}

// serve runs the HTTP server until ctx is done, then shuts it down gracefully: it stops
// accepting connections, lets in-flight requests finish within cfg.ShutdownTimeout and
// closes the pools. stop restores the default signal handling, so a second signal kills.
func serve(ctx context.Context, stop func(), cfg Config, logger *slog.Logger) error {
	db, err := openDB(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if cfg.MigrateOnStart {
		if err := migrate(ctx, db, migrationsDir(cfg.MigrationsDir), logger); err != nil {
			return fmt.Errorf("migrate on start: %w", err)
		}
	}

	m := newMetrics()
	m.watchDB(db, cfg.DBName)
	a := &app{
		store:   &sqlStore{db: db},
		metrics: m,
		logger:  logger,
	}
	srv := &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return err
	}
	logger.Info("listening", "addr", ln.Addr().String())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stop()
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}
