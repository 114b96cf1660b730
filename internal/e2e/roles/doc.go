// Package roles proves the generated ops/db/roles.sh on own PostgreSQL and MariaDB
// instances: the least-privilege roles it creates (application, migrations, exporter,
// backups), what each of them cannot do, that it brings a database of opsready 1.5 or older
// to them without losing data, that it is idempotent and atomic, and that the services and
// the backups work with their roles.
package roles
