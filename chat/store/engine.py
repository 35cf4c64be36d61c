"""Connections to the database: SQLite per OS thread, PostgreSQL from a pool, and SQL run on either."""
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import async_modes, internals
from ..config import SettingError, where

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

# An unreachable PostgreSQL fails a request within seconds instead of hanging it: bounded connect
# and pool waits, and TCP keepalives and a user timeout for a peer that vanished without closing.
PG_CONNECT_ARGS = {"connect_timeout": 3, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 2,
                   "keepalives_count": 3, "tcp_user_timeout": 10000}
PG_POOL_TIMEOUT = 5
# page_size: a commit writes each page it changed whole to the WAL, and a checkpoint writes it again into
# the file. A message changes little of each: the table's last page, and in each of the two indexes the page
# where its room's entries end. At SQLite's default of 4,096 bytes that was 14 KB written to the disk per
# message under 2,000 msg/s in 10 rooms; at 1,024, 5 KB, at the same CPU: less of a shared disk's time.
# A page size takes effect only in a new file, so it comes before journal_mode, which writes the file's
# first page; a file made before keeps its own until `papo vacuum` rewrites it.
SQLITE_PAGE_SIZE = 1024
# wal_autocheckpoint: the store's checkpointer thread moves the WAL into the file (Store). Under steady
# writes its PASSIVE checkpoints never catch the writer up, so the WAL starts over only after the writer's
# own checkpoint, which waits for the disk: at 16,384 pages that was every 3 s under 2,000 msg/s, each
# holding every queued message for 15 ms or more (two fdatasyncs); at 65,536 it is a quarter as often.
SQLITE_PRAGMAS = (f"page_size={SQLITE_PAGE_SIZE}", "journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                  "busy_timeout=30000", "wal_autocheckpoint=65536", "temp_store=MEMORY")


class DatabaseInUse(SettingError):
    """Another server process serves the same SQLite file."""


class DatabaseUnavailable(SettingError):
    """The database at DATABASE_URL cannot be opened or reached."""


class Tx:
    """SQL on one DBAPI cursor, written with `?` placeholders whatever the database.

    alone: the cursor is the PostgreSQL writer's, in autocommit mode on the writer's own OS thread (write_alone).
    """

    __slots__ = ("cursor", "postgres", "alone")
    _converted: dict[str, str] = {}
    _numbered: dict[str, str] = {}

    def __init__(self, cursor: Any, postgres: bool, alone: bool = False):
        self.cursor = cursor
        self.postgres = postgres
        self.alone = alone

    def rows(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        self.cursor.execute(self._sql(sql), params)
        return self.cursor.fetchall()

    def prepared_rows(self, name: str, sql: str, params: tuple[str, ...]) -> list[tuple]:
        """rows() of a statement with text parameters; alone, one libpq call (internals.pg_prepared_rows)."""
        if not self.alone:
            return self.rows(sql, params)
        numbered = self._numbered.get(sql)
        if numbered is None:
            parts = sql.split("?")
            numbered = self._numbered[sql] = parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))
        return internals.pg_prepared_rows(self.cursor.connection, name, numbered, params)

    def row(self, sql: str, params: tuple | list = ()) -> tuple | None:
        self.cursor.execute(self._sql(sql), params)
        return self.cursor.fetchone()

    def value(self, sql: str, params: tuple | list = ()) -> Any:
        found = self.row(sql, params)
        return None if found is None else found[0]

    def run(self, sql: str, params: tuple | list = ()) -> int:
        self.cursor.execute(self._sql(sql), params)
        return self.cursor.rowcount

    def _sql(self, sql: str) -> str:
        if not self.postgres:
            return sql
        converted = self._converted.get(sql)
        if converted is None:
            converted = self._converted[sql] = sql.replace("?", "%s")
        return converted


Work = Callable[..., Any]


class SqliteConnector:
    """One connection to a SQLite file for each OS thread that uses it, in WAL mode."""

    postgres = False
    integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
    # what a row's own values raise (a string no UTF-8 encoder takes, a value the database refuses):
    # the other rows of its batch can still be stored
    data_errors: tuple[type[Exception], ...] = (ValueError, sqlite3.DataError)

    def __init__(self, path: str):
        if not path or path == ":memory:":
            raise SettingError("DATABASE_URL: an in-memory SQLite database cannot be shared by Papo's threads; "
                               "name a file, e.g. sqlite:///instance/papo.db")
        self.path = path
        self._local = threading.local()
        self._claim: int | None = None
        self.after_commit: Callable[[], None] | None = None  # called in the writer after each commit

    @staticmethod
    def missing_table(error: Exception) -> bool:
        """Whether error says a table does not exist (a new database), rather than that the file is unusable."""
        return isinstance(error, sqlite3.OperationalError) and str(error).startswith("no such table")

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            for pragma in SQLITE_PRAGMAS:
                conn.execute("PRAGMA " + pragma)
            self._local.conn = conn
        return conn

    def use_wal(self) -> None:
        """Put the file in WAL mode now, from one connection, before the threads open theirs.

        The mode stays with the file. Switching a file to it takes SQLite's exclusive lock without
        waiting on the busy timeout, so threads that opened a fresh file at once and each asked for WAL
        failed with "database is locked" (4 at once: 22 of 200 tries); on a file in WAL mode already,
        asking again takes no lock.
        """
        self.connection()
        self.release()

    def release(self) -> None:
        """Close this thread's connection, if it has one."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()

    def read(self, work: Work, *args: Any) -> Any:
        return work(Tx(self.connection().cursor(), False), *args)

    def write(self, work: Work, *args: Any) -> Any:
        """`work(tx, *args)` in a write transaction that takes SQLite's lock up front, committed."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(Tx(conn.cursor(), False), *args)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if self.after_commit is not None:
            self.after_commit()
        return result

    def write_alone(self, work: Work, *args: Any) -> Any:
        """`work(tx, *args)` of one statement, which commits by itself: one step, where a transaction takes three."""
        result = work(Tx(self.connection().cursor(), False), *args)
        if self.after_commit is not None:
            self.after_commit()
        return result

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database file without waiting for readers or the writer."""
        self.connection().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def claim(self) -> None:
        """Refuse to serve a file that another server process serves: SQLite takes one writer process."""
        if self._claim is not None:
            return
        fd = os.open(self.path + "-papo.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseInUse(f"another Papo server serves {self.path}; several processes need a shared "
                                "PostgreSQL database: set DATABASE_URL=postgresql://... (docs/scaling.md)") from None
        os.ftruncate(fd, 0)
        self._claim = fd

    def vacuum(self) -> tuple[int, int, int]:
        """Rewrite the claimed file compactly with SQLITE_PAGE_SIZE: its bytes and page size before, its bytes after.

        SQLite changes the page size of a file in WAL mode only by leaving the mode for the rewrite.
        """
        assert self._claim is not None, "claim the file first: no server may use it meanwhile"
        conn = self.connection()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute("PRAGMA journal_mode=DELETE")  # moves what the WAL holds into the file first
        size = os.path.getsize(self.path)
        try:
            conn.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            conn.execute("VACUUM")
        finally:
            conn.execute("PRAGMA journal_mode=WAL")
        return size, page_size, os.path.getsize(self.path)

    def foreign_writes(self) -> int:
        """How many times other processes said they wrote since this one claimed the file (an fstat, no disk)."""
        assert self._claim is not None, "not claimed"
        return os.fstat(self._claim).st_size

    def tell_claimant(self) -> None:
        """Tell the server that claims this file that this process stored what it keeps in memory."""
        try:
            fd = os.open(self.path + "-papo.lock", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as error:  # the file is readable but its directory not writable: no server can claim it
            log.warning("could not tell a server of this write: %s", error)
            return
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)

    def close(self) -> None:
        self.release()
        if self._claim is not None:
            os.close(self._claim)
            self._claim = None


class PooledConnector:
    """PostgreSQL: reads on connections from SQLAlchemy's pool, writes on one connection of the writer's own.

    The writer is an OS thread (Store): its connection is made outside the pool, whose locks belong
    to the event loop, and it is checked with a ping after an idle second, as the pool checks its own.
    """

    postgres = True
    PING_AFTER_SECONDS = 1.0

    def __init__(self, engine: "Engine"):
        import psycopg

        self.engine = engine
        self.integrity_errors = (psycopg.IntegrityError,)
        self.data_errors = (ValueError, psycopg.DataError)
        self._operational_errors = (psycopg.OperationalError,)
        self._undefined_table = psycopg.errors.UndefinedTable
        self._connect = psycopg.connect
        self._writer: Any = None
        self._used = 0.0

    def missing_table(self, error: Exception) -> bool:
        """Whether error says a table does not exist (a new database), rather than that the server is unreachable."""
        return isinstance(error, self._undefined_table)

    def read(self, work: Work, *args: Any) -> Any:
        """`work(tx, *args)` on a pooled connection in autocommit mode: one round trip per statement.

        At READ COMMITTED each statement of a transaction sees a snapshot of its own anyway, so a
        transaction would add only its BEGIN and ROLLBACK: two more round trips through the loop. The
        pool does not ping a connection before lending it (one more): a read that finds its connection
        broken runs once more, on a new pool, as the others broke with it when PostgreSQL restarted.
        """
        for last in (False, True):
            raw = self.engine.raw_connection()
            try:
                return _read_on(raw, work, args)
            except self._operational_errors:
                if last or raw.is_valid:
                    raise
                self.engine.dispose()
            finally:
                raw.close()

    def write(self, work: Work, *args: Any) -> Any:
        """`work(tx, *args)` in a transaction on the writer's connection, committed; on the writer only.

        A connection found broken before its COMMIT was sent committed nothing: the work runs once more
        on a new one. One that breaks during the COMMIT raises, as the outcome is not known.
        """
        conn = self._writer_connection()
        try:
            result = _attempt(conn, work, args)
        except self._operational_errors:
            if not conn.broken:
                raise
            conn = self._writer_connection()
            result = _attempt(conn, work, args)
        conn.commit()
        self._used = time.monotonic()
        return result

    def write_alone(self, work: Work, *args: Any) -> Any:
        """`work(tx, *args)` of one statement in autocommit mode, which commits it by itself; on the writer only.

        One round trip, where a transaction takes two. A connection that breaks meanwhile raises, as
        the outcome is not known; one the server closed before is found first (_writer_connection).
        """
        conn = self._writer_connection()
        conn.autocommit = True
        try:
            return work(Tx(conn.cursor(), True, alone=True), *args)
        finally:
            if not conn.closed:
                conn.autocommit = False
            self._used = time.monotonic()

    def _writer_connection(self) -> Any:
        """The writer's connection, pinged first when idle for a while or when the server sent something unasked.

        An idle connection has nothing to read unless its server is closing it (a restart, an
        administrator's pg_terminate_backend), which it says before it goes: one select, no round trip.
        """
        conn = self._writer
        if conn is not None and not conn.broken and (time.monotonic() - self._used > self.PING_AFTER_SECONDS
                                                     or _readable(conn)):
            try:
                conn.execute("SELECT 1")
                conn.rollback()
            except self._operational_errors:
                conn.close()
        if conn is None or conn.closed or conn.broken:
            self.release()
            cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
            conn = self._writer = self._connect(*cargs, **{**cparams, **PG_CONNECT_ARGS})
        return conn

    def release(self) -> None:
        """Close the writer's connection, if it has one."""
        conn, self._writer = self._writer, None
        if conn is not None:
            conn.close()

    def claim(self) -> None:
        """Any number of processes may share a PostgreSQL database."""

    def tell_claimant(self) -> None:
        """Nothing keeps a PostgreSQL database's notifications in memory."""

    def close(self) -> None:
        self.release()
        self.engine.dispose()


def _readable(conn: Any) -> bool:
    """Whether the connection's socket has something to read, without waiting (the OS's select, not a green one)."""
    return bool(async_modes.os_select([conn.fileno()], [], [], 0)[0])


def _read_on(raw: Any, work: Work, args: tuple) -> Any:
    """work on a pooled connection in autocommit mode; the connection invalidated if it broke."""
    conn = raw.driver_connection
    conn.autocommit = True
    try:
        return work(Tx(conn.cursor(), True), *args)
    finally:
        if conn.broken:
            raw.invalidate()
        elif not conn.closed:
            conn.autocommit = False


def _attempt(conn: Any, work: Work, args: tuple) -> Any:
    """work on a new transaction of conn; rolled back if it raises."""
    try:
        return work(Tx(conn.cursor(), True), *args)
    except BaseException:
        if not conn.closed and not conn.broken:
            conn.rollback()
        raise


def make_engine(url: str) -> "Engine":
    """The SQLAlchemy engine for migrations (and PostgreSQL's pool); Store.migrate() then puts SQLite in WAL mode.

    SQLAlchemy is imported here, not with the module: a SQLite server whose file is up to date never
    needs it, and its import is a seventh of a second of every start.
    """
    from sqlalchemy import create_engine

    url = database_url(url)
    if not url.startswith("sqlite"):
        internals.psycopg_waits_cooperatively()
        return create_engine(url, pool_size=10, max_overflow=20, pool_timeout=PG_POOL_TIMEOUT,
                             connect_args=PG_CONNECT_ARGS)
    path = sqlite_path(url)
    if path and path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})


def database_url(url: str) -> str:
    """The URL with SQLAlchemy's name for the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def describe(url: str) -> str:
    """Name the database's kind and where it is, without credentials."""
    if url.startswith("sqlite:///"):
        return f"SQLite {url[len('sqlite:///'):] or '(memory)'}"
    return f"PostgreSQL {where(url)}"


def reason(error: BaseException) -> str:
    """The driver's own words for a failure, on one line, without SQLAlchemy's wrapping."""
    cause = getattr(error, "orig", None) or error
    return " ".join(line.strip() for line in str(cause).splitlines() if line.strip()) or type(cause).__name__


def sqlite_path(url: str) -> str:
    return url.split("///", 1)[-1] if "///" in url else ""
