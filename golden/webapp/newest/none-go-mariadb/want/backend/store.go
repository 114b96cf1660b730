package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
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

// openDB returns a MariaDB connection pool. It does not connect: the first query or
// Ping does. Sessions run in UTC so TIMESTAMP columns read back as UTC.
func openDB(cfg Config) (*sql.DB, error) {
	mc := mysql.NewConfig()
	mc.Net = "tcp"
	mc.Addr = net.JoinHostPort(cfg.DBHost, strconv.Itoa(cfg.DBPort))
	mc.User = cfg.DBUser
	mc.Passwd = cfg.DBPassword
	mc.DBName = cfg.DBName
	mc.ParseTime = true
	mc.Loc = time.UTC
	mc.Timeout = connectTimeout
	mc.Params = map[string]string{"time_zone": "'+00:00'"}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db := sql.OpenDB(connector)
	setPoolLimits(db, cfg.DBPoolSize)
	return db, nil
}

// INSERT ... RETURNING needs MariaDB 10.5 or newer.
const (
	insertItemSQL = `INSERT INTO items (name) VALUES (?) RETURNING id, name, created_at`
	listItemsSQL  = `SELECT id, name, created_at FROM items ORDER BY created_at DESC, id DESC LIMIT ?`
	getItemSQL    = `SELECT id, name, created_at FROM items WHERE id = ?`
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

// Cache is the read-through cache in front of Store.GetItem (cache-aside: the handler
// reads the cache, falls back to the Store and fills the cache).
type Cache interface {
	Ping(ctx context.Context) error
	GetItem(ctx context.Context, id int64) (Item, bool, error)
	SetItem(ctx context.Context, it Item) error
}

// itemTTL is how long a cached item lives.
const itemTTL = 60 * time.Second

// redisCache is the Cache backed by Redis: key item:<id>, value the item's JSON.
type redisCache struct {
	rdb *redis.Client
}

func newRedisClient(cfg Config) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:        cfg.RedisAddr,
		Password:    cfg.RedisPassword,
		DB:          cfg.RedisDB,
		DialTimeout: connectTimeout,
	})
}

func itemKey(id int64) string { return "item:" + strconv.FormatInt(id, 10) }

func (c *redisCache) Ping(ctx context.Context) error {
	return c.rdb.Ping(ctx).Err()
}

func (c *redisCache) GetItem(ctx context.Context, id int64) (Item, bool, error) {
	b, err := c.rdb.Get(ctx, itemKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Item{}, false, nil
	}
	if err != nil {
		return Item{}, false, fmt.Errorf("cache get item %d: %w", id, err)
	}
	var it Item
	if err := json.Unmarshal(b, &it); err != nil {
		return Item{}, false, fmt.Errorf("cache get item %d: %w", id, err)
	}
	return it, true, nil
}

func (c *redisCache) SetItem(ctx context.Context, it Item) error {
	b, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("cache set item %d: %w", it.ID, err)
	}
	if err := c.rdb.Set(ctx, itemKey(it.ID), b, itemTTL).Err(); err != nil {
		return fmt.Errorf("cache set item %d: %w", it.ID, err)
	}
	return nil
}
