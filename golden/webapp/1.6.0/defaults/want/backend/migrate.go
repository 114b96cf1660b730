package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// dbWaitTimeout bounds how long migrate waits for the database to accept connections.
const dbWaitTimeout = 30 * time.Second

// Dialect-specific statements of the migration runner.
const (
	createMigrationsSQL  = `CREATE TABLE IF NOT EXISTS schema_migrations (version VARCHAR(255) PRIMARY KEY, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)`
	appliedMigrationsSQL = `SELECT version FROM schema_migrations`
	recordMigrationSQL   = `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, CURRENT_TIMESTAMP)`
)

// migrationLockID names the advisory lock (local to the database) that keeps two replicas
// started with MIGRATE_ON_START from migrating at once.
const migrationLockID = 72451001

func lockMigrations(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockID)
	return err
}

func unlockMigrations(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, migrationLockID)
	return err
}

// migrationsDir returns where the *.sql migrations are: MIGRATIONS_DIR when set, else
// "migrations" next to the executable (/app/migrations in the image), else ./migrations.
func migrationsDir(configured string) string {
	if configured != "" {
		return configured
	}
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Join(filepath.Dir(exe), "migrations")
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
	}
	return "migrations"
}

// migration is one NNNN_name.sql file; its version is the file name without ".sql".
type migration struct {
	version string
	path    string
}

// readMigrations lists the *.sql files of dir in file-name order.
func readMigrations(dir string) ([]migration, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		ms = append(ms, migration{version: strings.TrimSuffix(name, ".sql"), path: filepath.Join(dir, name)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return strings.Compare(a.version, b.version) })
	return ms, nil
}

// splitStatements splits a migration file into statements: a statement ends with a line
// whose last character is ";". Lines starting with "--" are comments and are dropped.
func splitStatements(src string) []string {
	var stmts []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); strings.TrimSpace(s) != "" {
			stmts = append(stmts, s)
		}
		cur.Reset()
	}
	for _, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			flush()
		}
	}
	flush()
	return stmts
}

// migrate applies the migrations in dir that schema_migrations does not list yet, each in
// a transaction together with its schema_migrations row.
func migrate(ctx context.Context, db *sql.DB, dir string, logger *slog.Logger) error {
	ms, err := readMigrations(dir)
	if err != nil {
		return err
	}
	if err := waitForDB(ctx, db, logger); err != nil {
		return err
	}
	conn, err := db.Conn(ctx) // one session holds the lock
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if err := lockMigrations(ctx, conn); err != nil {
		return fmt.Errorf("lock migrations: %w", err)
	}
	// Ending the session releases the lock as well; this just does it sooner.
	defer func() { _ = unlockMigrations(context.WithoutCancel(ctx), conn) }()
	if _, err := conn.ExecContext(ctx, createMigrationsSQL); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	applied, err := appliedVersions(ctx, conn)
	if err != nil {
		return err
	}
	n := 0
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if err := applyMigration(ctx, conn, m); err != nil {
			return err
		}
		logger.Info("migration applied", "version", m.version)
		n++
	}
	logger.Info("migrations up to date", "applied", n, "total", len(ms), "dir", dir)
	return nil
}

func appliedVersions(ctx context.Context, conn *sql.Conn) (map[string]bool, error) {
	rows, err := conn.QueryContext(ctx, appliedMigrationsSQL)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[string]bool{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return applied, nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, m migration) (err error) {
	src, err := os.ReadFile(m.path)
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.version, err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.version, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	for i, stmt := range splitStatements(string(src)) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("migration %s, statement %d: %w", m.version, i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, recordMigrationSQL, m.version); err != nil {
		return fmt.Errorf("migration %s: record: %w", m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.version, err)
	}
	return nil
}

// waitForDB pings the database until it answers, for at most dbWaitTimeout.
func waitForDB(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, dbWaitTimeout)
	defer cancel()
	for logged := false; ; {
		err := db.PingContext(ctx)
		if err == nil {
			return nil
		}
		if !logged {
			logger.Info("waiting for the database", "error", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("database not reachable within %s: %w", dbWaitTimeout, err)
		case <-time.After(time.Second):
		}
	}
}
