package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the server configuration, read from the environment (see README.md).
type Config struct {
	Port int

	DBHost     string
	DBPort     int
	DBName     string
	DBUser     string
	DBPassword string
	DBPoolSize int

	MigrateOnStart  bool
	MigrationsDir   string
	ShutdownTimeout time.Duration
	LogLevel        slog.Level
}

// loadConfig reads the configuration through getenv (os.Getenv outside tests) and
// reports every invalid variable at once.
func loadConfig(getenv func(string) string) (Config, error) {
	e := &envReader{getenv: getenv}
	c := Config{
		Port: e.port("PORT", 8080),

		DBHost:     e.str("DB_HOST", "db"),
		DBPort:     e.port("DB_PORT", 5432),
		DBName:     e.str("DB_NAME", "app"),
		DBUser:     e.str("DB_USER", "app"),
		DBPassword: e.secret("DB_PASSWORD"),
		DBPoolSize: e.poolSize("DB_POOL_SIZE", 10),

		MigrateOnStart:  e.boolean("MIGRATE_ON_START", false),
		MigrationsDir:   e.str("MIGRATIONS_DIR", ""),
		ShutdownTimeout: e.duration("SHUTDOWN_TIMEOUT", 20*time.Second),
		LogLevel:        e.level("LOG_LEVEL", slog.LevelInfo),
	}
	return c, errors.Join(e.errs...)
}

// envReader reads typed environment variables and collects the errors.
type envReader struct {
	getenv func(string) string
	errs   []error
}

func (e *envReader) fail(key, value, want string) {
	e.errs = append(e.errs, fmt.Errorf("%s=%q: want %s", key, value, want))
}

// str returns the variable, or def when it is unset or empty.
func (e *envReader) str(key, def string) string {
	if v := e.getenv(key); v != "" {
		return v
	}
	return def
}

// secret returns the contents of the file named by KEY_FILE when that is set (without the
// trailing newline), otherwise the value of KEY.
func (e *envReader) secret(key string) string {
	path := e.getenv(key + "_FILE")
	if path == "" {
		return e.getenv(key)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s_FILE: %w", key, err))
		return ""
	}
	return strings.TrimRight(string(b), "\r\n")
}

func (e *envReader) port(key string, def int) int {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		e.fail(key, v, "a port number 1-65535")
		return def
	}
	return n
}

// poolSize reads the number of connections a replica's pool may open: at least 1 (compose.prod.yaml
// sets it from the quotas, docs/tuning.md).
func (e *envReader) poolSize(key string, def int) int {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		e.fail(key, v, "an integer from 1 to 1000")
		return def
	}
	return n
}

func (e *envReader) boolean(key string, def bool) bool {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(key, v, "true or false")
		return def
	}
	return b
}

// duration accepts a Go duration ("20s", "1m30s") or a number of seconds ("20").
func (e *envReader) duration(key string, def time.Duration) time.Duration {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		e.fail(key, v, `a duration like "20s" or a number of seconds`)
		return def
	}
	return d
}

func (e *envReader) level(key string, def slog.Level) slog.Level {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		e.fail(key, v, "debug, info, warn or error")
		return def
	}
	return l
}
