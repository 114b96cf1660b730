package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over a fixed map.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Port: 8080,

		DBHost: "db",
		DBPort: 5432,
		DBName: "app",
		DBUser: "app",

		DBPoolSize: 10,

		ShutdownTimeout: 20 * time.Second,
		LogLevel:        slog.LevelInfo,
	}
	if c != want {
		t.Errorf("loadConfig() = %+v, want %+v", c, want)
	}
}

func TestLoadConfigValues(t *testing.T) {
	c, err := loadConfig(env(map[string]string{
		"PORT":             "9000",
		"DB_HOST":          "127.0.0.1",
		"DB_PORT":          "15432",
		"DB_NAME":          "items",
		"DB_USER":          "u",
		"DB_PASSWORD":      "secret",
		"DB_POOL_SIZE":     "7",
		"MIGRATE_ON_START": "true",
		"MIGRATIONS_DIR":   "/m",
		"SHUTDOWN_TIMEOUT": "1m30s",
		"LOG_LEVEL":        "DEBUG",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Port: 9000,

		DBHost:     "127.0.0.1",
		DBPort:     15432,
		DBName:     "items",
		DBUser:     "u",
		DBPassword: "secret",
		DBPoolSize: 7,

		MigrateOnStart:  true,
		MigrationsDir:   "/m",
		ShutdownTimeout: 90 * time.Second,
		LogLevel:        slog.LevelDebug,
	}
	if c != want {
		t.Errorf("loadConfig() = %+v, want %+v", c, want)
	}
}

func TestShutdownTimeoutInSeconds(t *testing.T) {
	c, err := loadConfig(env(map[string]string{"SHUTDOWN_TIMEOUT": "5"}))
	if err != nil || c.ShutdownTimeout != 5*time.Second {
		t.Errorf("SHUTDOWN_TIMEOUT=5: got %v, %v; want 5s", c.ShutdownTimeout, err)
	}
}

func TestPasswordFileWins(t *testing.T) {
	file := filepath.Join(t.TempDir(), "db_password")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(env(map[string]string{"DB_PASSWORD": "from-env", "DB_PASSWORD_FILE": file}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DBPassword != "from-file" {
		t.Errorf("DBPassword = %q, want the file's contents without the newline", c.DBPassword)
	}

	_, err = loadConfig(env(map[string]string{"DB_PASSWORD_FILE": filepath.Join(t.TempDir(), "missing")}))
	if err == nil || !strings.Contains(err.Error(), "DB_PASSWORD_FILE") {
		t.Errorf("missing DB_PASSWORD_FILE: err = %v, want an error naming the variable", err)
	}
}

func TestLoadConfigReportsEveryError(t *testing.T) {
	_, err := loadConfig(env(map[string]string{
		"PORT":             "0",
		"DB_PORT":          "http",
		"MIGRATE_ON_START": "maybe",
		"SHUTDOWN_TIMEOUT": "soon",
		"LOG_LEVEL":        "loud",
		"DB_POOL_SIZE":     "0",
	}))
	if err == nil {
		t.Fatal("loadConfig accepted invalid values")
	}
	for _, key := range []string{"PORT", "DB_PORT", "MIGRATE_ON_START", "SHUTDOWN_TIMEOUT", "LOG_LEVEL", "DB_POOL_SIZE"} {
		if !strings.Contains(err.Error(), key+"=") {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
}
