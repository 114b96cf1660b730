// scripts/mk-node-lock.mjs LOCKDIR > blueprints/webapp/<version>/files/backend-node/package-lock.json.tmpl
// Builds a text/template for package-lock.json from the npm-generated locks of the four
// variants (LOCKDIR/{postgres,mariadb}-{none,redis}/package-lock.json, rendered with name "demo").
import { readFileSync } from 'node:fs';

const dir = process.argv[2];
const variants = [];
for (const db of ['postgres', 'mariadb']) {
  for (const cache of ['none', 'redis']) {
    const lock = JSON.parse(readFileSync(`${dir}/${db}-${cache}/package-lock.json`, 'utf8'));
    variants.push({ db, cache, lock });
  }
}
const conds = [
  ['', () => true],
  ['eq .db "postgres"', (v) => v.db === 'postgres'],
  ['eq .db "mariadb"', (v) => v.db === 'mariadb'],
  ['eq .cache "redis"', (v) => v.cache === 'redis'],
];
function condFor(present) {
  for (const [expr, pred] of conds) {
    if (variants.every((v) => pred(v) === present.has(v))) return expr;
  }
  throw new Error(`no condition for ${[...present].map((v) => `${v.db}-${v.cache}`)}`);
}
const indent = (s, n) => s.split('\n').join(`\n${' '.repeat(n)}`);

// Root entry: name from the answers, dependencies per variant.
const root = variants[3].lock.packages[''];
const deps = {};
for (const v of variants) for (const [k, ver] of Object.entries(v.lock.packages[''].dependencies)) deps[k] = ver;
const depPresent = (k) => new Set(variants.filter((v) => k in v.lock.packages[''].dependencies));
// Expected shape: one database driver (mysql2 | pg, sorting first), then prom-client, then redis.
const want = { mysql2: 'eq .db "mariadb"', pg: 'eq .db "postgres"', 'prom-client': '', redis: 'eq .cache "redis"' };
if (Object.keys(deps).sort().join() !== Object.keys(want).join()) throw new Error(`unexpected dependencies ${Object.keys(deps)}`);
for (const [k, c] of Object.entries(want)) if (condFor(depPresent(k)) !== c) throw new Error(`${k}: unexpected condition`);
const dep = (k) => `${JSON.stringify(k)}: ${JSON.stringify(deps[k])}`;
const depText =
  `\n        {{ if eq .db "postgres" }}${dep('pg')}{{ else }}${dep('mysql2')}{{ end }},` +
  `\n        ${dep('prom-client')}{{ if eq .cache "redis" }},\n        ${dep('redis')}{{ end }}`;

const keys = new Set();
for (const v of variants) for (const k of Object.keys(v.lock.packages)) if (k !== '') keys.add(k);
let pkgText = '';
for (const k of [...keys].sort()) {
  const present = new Set(variants.filter((v) => k in v.lock.packages));
  const entries = [...present].map((v) => JSON.stringify(v.lock.packages[k]));
  if (new Set(entries).size !== 1) throw new Error(`${k} differs between variants`);
  const line = `,\n    ${JSON.stringify(k)}: ${indent(JSON.stringify(JSON.parse(entries[0]), null, 2), 4)}`;
  const c = condFor(present);
  pkgText += c ? `{{ if ${c} }}${line}{{ end }}` : line;
}

const rest = { ...root };
delete rest.name;
delete rest.version;
delete rest.dependencies;
if (Object.keys(rest).join() !== 'engines') throw new Error(`unexpected root fields ${Object.keys(rest)}`);
process.stdout.write(`{
  "name": {{ jsonString .name }},
  "version": ${JSON.stringify(root.version)},
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {
      "name": {{ jsonString .name }},
      "version": ${JSON.stringify(root.version)},
      "dependencies": {${depText}
      },
      "engines": ${indent(JSON.stringify(root.engines, null, 2), 6)}
    }${pkgText}
  }
}
`);
