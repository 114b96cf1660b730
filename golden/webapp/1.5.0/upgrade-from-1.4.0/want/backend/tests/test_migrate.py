"""Migration file handling (applying them needs a database: see the e2e tests)."""

from __future__ import annotations

from app.migrate import DEFAULT_DIR, pending, statements


def test_statements_split_at_line_end():
    sql = """-- a comment
CREATE TABLE a (x int);
INSERT INTO a VALUES (1);  
-- trailing comment only
"""
    assert statements(sql) == ["-- a comment\nCREATE TABLE a (x int)", "INSERT INTO a VALUES (1)"]


def test_semicolon_inside_a_line_does_not_split():
    assert statements("INSERT INTO t VALUES ('a;b');\n") == ["INSERT INTO t VALUES ('a;b')"]


def test_pending_in_file_name_order(tmp_path):
    for name in ("0002_b.sql", "0001_a.sql", "0010_c.sql", "notes.txt"):
        (tmp_path / name).write_text("SELECT 1;\n")
    assert [p.name for p in pending(tmp_path, set())] == ["0001_a.sql", "0002_b.sql", "0010_c.sql"]
    assert [p.name for p in pending(tmp_path, {"0001_a", "0002_b"})] == ["0010_c.sql"]


def test_shipped_migrations_parse():
    files = pending(DEFAULT_DIR, set())
    assert files, f"no migrations in {DEFAULT_DIR}"
    for path in files:
        assert statements(path.read_text()), path
