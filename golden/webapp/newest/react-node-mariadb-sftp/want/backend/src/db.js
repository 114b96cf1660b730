// The items store on MariaDB (mysql2).
import mysql from 'mysql2/promise';

/**
 * createStore returns the items store backed by a connection pool. Connections are opened
 * on first use, so the server starts (and /readyz reports why) while the database is down.
 */
export function createStore(db, log) {
  const pool = mysql.createPool({
    host: db.host,
    port: db.port,
    database: db.name,
    user: db.user,
    password: db.password,
    connectionLimit: db.poolSize,
    connectTimeout: 5000,
    enableKeepAlive: true,
    charset: 'utf8mb4',
    // TIMESTAMP columns are read and written in UTC: the session time zone is set below.
    timezone: 'Z',
    supportBigNumbers: true,
  });
  pool.pool.on('connection', (conn) => {
    conn.query("SET time_zone = '+00:00'", (err) => {
      if (err) log.warn('set session time zone failed', { err });
    });
  });

  return {
    async ping() {
      await pool.query('SELECT 1');
    },

    async createItem(name) {
      const [rows] = await pool.query(
        'INSERT INTO items (name) VALUES (?) RETURNING id, name, created_at',
        [name],
      );
      return toItem(rows[0]);
    },

    async listItems(limit) {
      const [rows] = await pool.query(
        'SELECT id, name, created_at FROM items ORDER BY created_at DESC, id DESC LIMIT ?',
        [limit],
      );
      return rows.map(toItem);
    },

    async getItem(id) {
      const [rows] = await pool.query('SELECT id, name, created_at FROM items WHERE id = ?', [id]);
      return rows.length === 0 ? null : toItem(rows[0]);
    },

    /**
     * migrate calls fn with a migration session on one connection that holds a named lock
     * (per database), so replicas started together apply each migration once.
     */
    async migrate(fn) {
      const conn = await pool.getConnection();
      let broken = false;
      try {
        const lock = "LEFT(CONCAT('schema_migrations:', DATABASE()), 64)";
        const [[{ locked }]] = await conn.query(`SELECT GET_LOCK(${lock}, 300) AS locked`);
        if (locked !== 1) throw new Error('another migration held the lock for 300 s');
        try {
          await conn.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
            version    VARCHAR(255) PRIMARY KEY,
            applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
          )`);
          return await fn({
            async applied() {
              const [rows] = await conn.query('SELECT version FROM schema_migrations');
              return new Set(rows.map((r) => r.version));
            },
            // MariaDB commits DDL implicitly, so write migrations that can be re-run
            // (CREATE TABLE IF NOT EXISTS ...) in case one fails half-way.
            async apply(version, statements) {
              for (const sql of statements) await conn.query(sql);
              await conn.query('INSERT INTO schema_migrations (version) VALUES (?)', [version]);
            },
          });
        } finally {
          await conn.query(`SELECT RELEASE_LOCK(${lock})`).catch(() => {
            broken = true;
          });
        }
      } finally {
        if (broken) conn.destroy();
        else conn.release();
      }
    },

    async close() {
      await pool.end();
    },
  };
}

function toItem(row) {
  return { id: Number(row.id), name: row.name, created_at: new Date(row.created_at).toISOString() };
}
