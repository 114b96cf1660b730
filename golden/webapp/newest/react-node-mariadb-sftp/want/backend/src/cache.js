// Cache-aside for items in Redis (node-redis).
import { createClient } from 'redis';

export const ITEM_TTL_SECONDS = 60;

/**
 * createCache connects to Redis in the background and returns the item cache. While Redis
 * is unreachable the client keeps reconnecting, cache calls fail at once (no offline queue)
 * and the items API falls back to the database.
 */
export function createCache(redis, log) {
  let lastError = null;
  const client = createClient({
    socket: {
      host: redis.host,
      port: redis.port,
      connectTimeout: 5000,
      reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 5000),
    },
    password: redis.password || undefined,
    database: redis.db,
    disableOfflineQueue: true,
  });
  client.on('error', (err) => {
    if (err.message !== lastError) log.warn('cache connection failed', { err });
    lastError = err.message;
  });
  client.on('ready', () => {
    if (lastError !== null) log.info('cache connected');
    lastError = null;
  });
  client.connect().catch(() => {}); // failures arrive as 'error' events and are retried
  return itemCache(client, () => lastError);
}

/** itemCache stores items as JSON under item:<id> with a TTL; lastError explains an offline client. */
export function itemCache(client, lastError = () => null) {
  return {
    async get(id) {
      const value = await client.get(`item:${id}`);
      return value === null ? null : JSON.parse(value);
    },

    async set(item) {
      await client.set(`item:${item.id}`, JSON.stringify(item), {
        expiration: { type: 'EX', value: ITEM_TTL_SECONDS },
      });
    },

    async ping() {
      try {
        await client.ping();
      } catch (err) {
        const cause = lastError();
        throw new Error(cause ? `${err.message}: ${cause}` : err.message);
      }
    },

    async close() {
      if (client.isReady) await client.close();
      else client.destroy();
    },
  };
}
