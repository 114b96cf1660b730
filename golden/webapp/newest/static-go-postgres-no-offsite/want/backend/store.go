package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// Item is one row of the items table.
type Item struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// ErrNotFound is returned by Store.GetItem for an id that does not exist.
var ErrNotFound = errors.New("not found")

// Store is what the HTTP handlers need from the database. The handler tests use a fake.
type Store interface {
	Ping(ctx context.Context) error
	CreateItem(ctx context.Context, name string) (Item, error)
	ListItems(ctx context.Context, limit int) ([]Item, error)
	GetItem(ctx context.Context, id int64) (Item, error)
}

// Connection pool limits: each backend replica opens at most Config.DBPoolSize connections
// (DB_POOL_SIZE, derived from the quotas in compose.prod.yaml; docs/tuning.md) and keeps half
// of them idle.
const (
	connMaxLifetime = 30 * time.Minute
	connectTimeout  = 5 * time.Second
)

// openDB returns a PostgreSQL connection pool (pgx through database/sql). It does not
// connect: the first query or Ping does.
func openDB(cfg Config) (*sql.DB, error) {
	dsn := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(cfg.DBUser, cfg.DBPassword),
		Host:     net.JoinHostPort(cfg.DBHost, strconv.Itoa(cfg.DBPort)),
		Path:     "/" + cfg.DBName,
		RawQuery: url.Values{"sslmode": {"disable"}, "connect_timeout": {strconv.Itoa(int(connectTimeout.Seconds()))}}.Encode(),
	}
	db, err := sql.Open("pgx", dsn.String())
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	setPoolLimits(db, cfg.DBPoolSize)
	return db, nil
}

const (
	insertItemSQL = `INSERT INTO items (name) VALUES ($1) RETURNING id, name, created_at`
	listItemsSQL  = `SELECT id, name, created_at FROM items ORDER BY created_at DESC, id DESC LIMIT $1`
	getItemSQL    = `SELECT id, name, created_at FROM items WHERE id = $1`
)

func setPoolLimits(db *sql.DB, size int) {
	db.SetMaxOpenConns(size)
	db.SetMaxIdleConns(max(1, size/2))
	db.SetConnMaxLifetime(connMaxLifetime)
}

// sqlStore is the Store backed by the database.
type sqlStore struct {
	db *sql.DB
}

func (s *sqlStore) Ping(ctx context.Context) error {
	return s.db.PingContext(ctx)
}

func (s *sqlStore) CreateItem(ctx context.Context, name string) (Item, error) {
	it, err := scanItem(s.db.QueryRowContext(ctx, insertItemSQL, name))
	if err != nil {
		return Item{}, fmt.Errorf("insert item: %w", err)
	}
	return it, nil
}

func (s *sqlStore) ListItems(ctx context.Context, limit int) ([]Item, error) {
	rows, err := s.db.QueryContext(ctx, listItemsSQL, limit)
	if err != nil {
		return nil, fmt.Errorf("list items: %w", err)
	}
	defer rows.Close()
	items := []Item{}
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, fmt.Errorf("list items: %w", err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list items: %w", err)
	}
	return items, nil
}

func (s *sqlStore) GetItem(ctx context.Context, id int64) (Item, error) {
	it, err := scanItem(s.db.QueryRowContext(ctx, getItemSQL, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Item{}, ErrNotFound
	}
	if err != nil {
		return Item{}, fmt.Errorf("get item %d: %w", id, err)
	}
	return it, nil
}

func scanItem(row interface{ Scan(...any) error }) (Item, error) {
	var it Item
	if err := row.Scan(&it.ID, &it.Name, &it.CreatedAt); err != nil {
		return Item{}, err
	}
	it.CreatedAt = it.CreatedAt.UTC()
	return it, nil
}
