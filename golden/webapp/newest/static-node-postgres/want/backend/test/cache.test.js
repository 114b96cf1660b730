import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createCache } from '../src/cache.js';

test('without a cache createCache returns null', () => {
  assert.equal(createCache(), null);
});
