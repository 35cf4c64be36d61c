"""Write chat/store/sqlite_schema.sql: the schema the migrations make on a new SQLite file.

    .venv/bin/python tools/sqlite_schema.py   # after adding a migration

A new SQLite database is given this file instead of running every migration (chat/store/sqlite_schema.py);
tests/test_sqlite_schema.py fails while the file is not what the migrations make.
"""
import sqlite3
import sys
import tempfile
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chat.store import Store, sqlite_schema  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "migrated.db"
        store = Store(f"sqlite:///{path}")
        store.migrate(written_schema=False)
        store.close()
        with closing(sqlite3.connect(path)) as conn:
            text = sqlite_schema.dump(conn)
    sqlite_schema.SCHEMA.write_text(text)
    print(f"wrote {sqlite_schema.SCHEMA} ({len(sqlite_schema.split(text))} statements)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
