"""Write chat/store/sqlite_schema.sql: the schema the migrations make on a new SQLite file.

    .venv/bin/python tools/sqlite_schema.py          # after adding a migration
    .venv/bin/python tools/sqlite_schema.py --check  # exit 1 when its schema is not the migrations'

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


def migrated(folder: Path) -> Path:
    """A new database in folder that the migrations made."""
    path = folder / "migrated.db"
    store = Store(f"sqlite:///{path}")
    store.migrate(written_schema=False)
    store.close()
    return path


def up_to_date(folder: Path) -> bool:
    """Whether a database made from the written schema has the schema the migrations make."""
    written = folder / "written.db"
    with closing(sqlite3.connect(written, isolation_level=None)) as conn:
        sqlite_schema.load(conn)
        made = sqlite_schema.shape(conn)
    with closing(sqlite3.connect(migrated(folder))) as conn:
        return made == sqlite_schema.shape(conn)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        if args.check:
            same = up_to_date(Path(folder))
            verdict = "up to date" if same else "differs from the migrations: run tools/sqlite_schema.py"
            print(f"{sqlite_schema.SCHEMA.name}: {verdict}")
            return 0 if same else 1
        with closing(sqlite3.connect(migrated(Path(folder)))) as conn:
            text = sqlite_schema.dump(conn)
    sqlite_schema.SCHEMA.write_text(text)
    print(f"wrote {sqlite_schema.SCHEMA} ({len(sqlite_schema.split(text))} statements)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
