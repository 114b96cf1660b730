// The items store on PostgreSQL (node-postgres).
import pg from 'pg';

// MIGRATION_LOCK is the pg_advisory_lock key that serialises concurrent `migrate` runs.
const MIGRATION_LOCK = 4_171_202_501;

/**
 * createStore returns the items store backed by a connection pool. Connections are opened
 * on first use, so the server starts (and /readyz reports why) while the database is down.
 */
export function createStore(db, log) {
  const pool = new pg.Pool({
    host: db.host,
    port: db.port,
    database: db.name,
    user: db.user,
    password: db.password,
    max: db.poolSize,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    application_name: 'backend',
  });
  // An idle connection that breaks (database restart) is dropped by the pool; log it.
  pool.on('error', (err) => log.warn('idle database connection failed', { err }));

  return {
    async ping() {
      await pool.query('SELECT 1');
    },

    async createItem(name) {
      const { rows } = await pool.query(
        'INSERT INTO items (name) VALUES ($1) RETURNING id, name, created_at',
        [name],
      );
      return toItem(rows[0]);
    },

    async listItems(limit) {
      const { rows } = await pool.query(
        'SELECT id, name, created_at FROM items ORDER BY created_at DESC, id DESC LIMIT $1',
        [limit],
      );
      return rows.map(toItem);
    },

    async getItem(id) {
      const { rows } = await pool.query('SELECT id, name, created_at FROM items WHERE id = $1', [id]);
      return rows.length === 0 ? null : toItem(rows[0]);
    },

    /**
     * migrate calls fn with a migration session on one connection that holds an advisory
     * lock, so replicas started together apply each migration once.
     */
    async migrate(fn) {
      const conn = await pool.connect();
      let broken;
      try {
        await conn.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
        try {
          await conn.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
            version    VARCHAR(255) PRIMARY KEY,
            applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
          )`);
          return await fn({
            async applied() {
              const { rows } = await conn.query('SELECT version FROM schema_migrations');
              return new Set(rows.map((r) => r.version));
            },
            // PostgreSQL runs DDL in transactions: a migration applies whole or not at all.
            async apply(version, statements) {
              await conn.query('BEGIN');
              try {
                for (const sql of statements) await conn.query(sql);
                await conn.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version]);
                await conn.query('COMMIT');
              } catch (err) {
                await conn.query('ROLLBACK').catch(() => {});
                throw err;
              }
            },
          });
        } finally {
          await conn.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch((err) => {
            broken = err;
          });
        }
      } finally {
        conn.release(broken);
      }
    },

    async close() {
      await pool.end();
    },
  };
}

function toItem(row) {
  return { id: Number(row.id), name: row.name, created_at: row.created_at.toISOString() };
}
