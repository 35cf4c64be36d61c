"""Write chat/store/sqlite_schema.sql: the schema the migrations make on a new SQLite file.

    .venv/bin/python tools/sqlite_schema.py          # after adding a migration
    .venv/bin/python tools/sqlite_schema.py --check  # exit 1 when the file differs from the migrations'

A new SQLite database is given this file instead of running every migration (chat/store/sqlite_schema.py).
"""
import argparse
import sqlite3
import sys
import tempfile
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chat.store import Store, sqlite_schema  # noqa: E402


def migrations_dump() -> str:
    """The schema file of a new database that the migrations made."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "migrated.db"
        store = Store(f"sqlite:///{path}")
        store.migrate(written_schema=False)
        store.close()
        with closing(sqlite3.connect(path)) as conn:
            return sqlite_schema.dump(conn)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    text = migrations_dump()
    if args.check:
        same = sqlite_schema.SCHEMA.read_text() == text
        verdict = "up to date" if same else "differs from the migrations: run tools/sqlite_schema.py"
        print(f"{sqlite_schema.SCHEMA.name}: {verdict}")
        return 0 if same else 1
    sqlite_schema.SCHEMA.write_text(text)
    print(f"wrote {sqlite_schema.SCHEMA} ({len(sqlite_schema.split(text))} statements)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
