"""`python -m app migrate`: apply migrations/NNNN_name.sql in file-name order, each once.

Applied versions (file names without .sql) are recorded in schema_migrations. A file holds one
or more statements separated by ";" at the end of a line. Concurrent runs wait for each other.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from pathlib import Path

from . import store
from .config import Settings

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "migrations"

CREATE_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version    VARCHAR(255) NOT NULL PRIMARY KEY,
    applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
)"""

log = logging.getLogger("app.migrate")


def statements(sql: str) -> list[str]:
    """Split a migration into statements at ";" at line end, dropping comment-only pieces."""
    out = []
    for part in re.split(r";[ \t]*$", sql, flags=re.MULTILINE):
        code = [ln for ln in part.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        if code:
            out.append(part.strip())
    return out


def pending(directory: Path, applied: set[str]) -> list[Path]:
    """The migration files in directory not yet applied, in the order to apply them."""
    return [p for p in sorted(directory.glob("*.sql")) if p.stem not in applied]


def run(cfg: Settings, directory: Path = DEFAULT_DIR) -> int:
    """Apply pending migrations; return how many were applied. Raises on the first failure."""
    if not directory.is_dir():
        raise FileNotFoundError(f"migrations directory {directory} does not exist")
    conn = store.connect(cfg)
    try:
        cur = conn.cursor()
        cur.execute(store.MIGRATION_LOCK)
        cur.fetchall()
        cur.execute(CREATE_TABLE)
        cur.execute("SELECT version FROM schema_migrations")
        applied = {_value(row) for row in cur.fetchall()}
        todo = pending(directory, applied)
        for path in todo:
            start = time.perf_counter()
            # PostgreSQL rolls a failed migration back; MariaDB commits each DDL statement
            # implicitly, so there a failed migration must be repaired by hand.
            cur.execute("BEGIN")
            try:
                for stmt in statements(path.read_text(encoding="utf-8")):
                    cur.execute(stmt)
                cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
                cur.execute("COMMIT")
            except Exception as exc:
                with contextlib.suppress(Exception):
                    cur.execute("ROLLBACK")
                raise RuntimeError(f"migration {path.name}: {exc}") from exc
            log.info("migration applied", extra={"fields": {
                "version": path.stem,
                "duration_ms": round((time.perf_counter() - start) * 1000, 3),
            }})
        cur.execute(store.MIGRATION_UNLOCK)
        cur.fetchall()
        log.info("migrations up to date", extra={"fields": {
            "applied": len(todo), "total": len(applied) + len(todo),
        }})
        return len(todo)
    finally:
        conn.close()


def _value(row) -> str:
    """The first column of a row, whether the driver returns tuples or dicts."""
    return next(iter(row.values())) if isinstance(row, dict) else row[0]
