// Package adopt brings an existing docker compose project under opsready. This part
// detects the stack from the compose model (check.LoadProject loads it as docker compose
// would): which service is the database, the cache, the backend, the frontend and the
// proxy, the engine versions, the volumes that hold data, the healthchecks adopt can add and
// the database credentials' source. It reads the compose model, plus each build context's
// Dockerfile and package.json; nothing else, and it writes nothing.
//
// Roles, in this order:
//   - job: a one-shot task (check.IsJob: something waits for it to complete, or it has
//     restart "no" and a disabled healthcheck).
//   - db / cache: a data-store image (check.StoreKind, the rule check uses, on the image or,
//     for a built service, on the base image of its Dockerfile's built stage). redis,
//     valkey, keydb and memcached are caches; postgres, mariadb, mysql, mongodb and other
//     stores (elasticsearch, …) are db.
//     Detection.DB is the relational one (postgres, mariadb, mysql), the first by name when
//     there are several; Detection.Cache is redis or valkey. Every other store gets an
//     Unsupported line (no backup, exporter or alert rules for it; the rest is adopted).
//   - proxy: an nginx, nginx-unprivileged, openresty, traefik, caddy, haproxy, envoy, httpd
//     or nginx-proxy image (or a build from one) that publishes 80 or 443, depends on an app
//     service, or is named proxy, nginx, traefik, gateway, …; except a built service named
//     like a frontend or whose build context is a UI project (an SPA served by nginx).
//   - frontend / backend: by weighed evidence. Frontend: a frontend-like name (frontend, ui,
//     client, web-ui, webapp, spa) 3, or "web" 1; a build context whose package.json names a browser UI
//     framework (react-dom, react-scripts, vite, angular, vue, svelte, next, nuxt, preact) 2;
//     a node/bun/deno build that listens on a JS dev-server port (3000, 5173, 8080, 4200) 1.
//     Backend: a backend-like name (backend, api*, app, server) 3, or "web" 1; an official
//     application image such as nextcloud or wordpress 3; other apps depend on it 2 (only a
//     proxy: 1); it depends on a data store 2; it listens on an API-ish port (80, 443,
//     3000, 4000, 5000, 8000, 8080, 8081, 9000) 1. Frontend when its score is at least 2
//     and beats the backend score; backend when the backend score is at least 2 (1 for a
//     built service); other otherwise. Admin and monitoring tools (adminer, phpmyadmin,
//     pgadmin, grafana, …) are other. When several services share a role, the Detection
//     field takes the highest score, then a conventional name, then the first by name, and
//     Notes says so.
//
// Data volumes: the named volumes mounted by services that are not data stores, except
// those mounted at dependency or cache paths (node_modules, vendor, .cache, …): an official
// app's data (nextcloud's /var/www/html) lands here, for a files backup. Volumes of data
// stores are not listed, supported or not: a file copy of a running database is no backup.
//
// A store's DataDir is the target of the named volume that holds the engine's data path
// (postgres: PGDATA, /var/lib/postgresql/data, from 18 /var/lib/postgresql/<major>/docker;
// mariadb and mysql /var/lib/mysql; redis /data; mongodb /data/db), the path itself or a
// parent of it; Notes say when the data is in a bind mount or in no volume at all.
//
// Healthchecks are suggested only for services without one in the compose files and
// without a HEALTHCHECK in their Dockerfile's built stage: postgres pg_isready over TCP with
// the detected user and database; mariadb `mariadb-admin ping || mysqladmin ping` (answered
// without an account, unlike healthcheck.sh --innodb_initialized, whose user an adopted,
// older data directory lacks); mysql mysqladmin ping; redis/valkey/keydb their CLI's ping; mongodb mongosh (mongo before 5.0); nginx curl
// without -f (any HTTP answer shows the proxy is up; the upstream has its own check); httpd
// bash /dev/tcp (wget on alpine); caddy its admin API; traefik `traefik healthcheck --ping`
// when ping is enabled. Application services get none: their health endpoint is unknown
// unless a healthcheck already names it (HealthPath).
//
// A database password counts as literal when it is set in the service environment and is
// not the value of a variable of the interpolation environment (.env, process): the loaded
// model no longer shows whether ${VAR} was written, so a literal equal to some variable's
// value is missed.
package adopt
