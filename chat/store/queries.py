"""The SQL of every read and write, as functions of a Tx: one style for SQLite and PostgreSQL alike."""
import html
import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

from . import wire
from .engine import Tx

MAX_INT = 2 ** 63 - 1
_MESSAGE_COLUMNS = ("m.id, r.name, m.seq, m.author, m.text, m.ts, m.client_id, "
                    "m.rev, m.edited_at, m.deleted, m.reactions")
_MESSAGES = f"SELECT {_MESSAGE_COLUMNS} FROM messages m JOIN rooms r ON r.id = m.room_id"
_DIRECTS = "SELECT id, sender, recipient, text, ts, client_id FROM directs"
_NOTIFICATIONS = "SELECT id, recipient, title, body, level, ts, read_at FROM notifications"

Item = tuple[str, str, str, int, str | None]  # (room, author, text, ts, client_id) of a message to store


class User(NamedTuple):
    username: str
    password_hash: str


# users

def add_user(tx: Tx, username: str, password_hash: str, now: int) -> None:
    tx.run("INSERT INTO users (username, username_key, password_hash, created_at) VALUES (?, ?, ?, ?)",
           (username, username.lower(), password_hash, now))


def find_user(tx: Tx, username: str) -> User | None:
    found = tx.row("SELECT username, password_hash FROM users WHERE username_key = ?", (username.lower(),))
    return User(*found) if found else None


# rooms

def room_ids(tx: Tx, names: list[str], now: int) -> dict[str, int]:
    """The ids of the named rooms, creating those that do not exist yet (public, with no owner)."""
    ids = _room_ids(tx, names)
    for name in names:
        if name not in ids:
            tx.run("INSERT INTO rooms (name, last_seq, created_at, private) VALUES (?, 0, ?, ?) "
                   "ON CONFLICT (name) DO NOTHING", (name, now, False))
    return ids if len(ids) == len(set(names)) else _room_ids(tx, names)


def _room_ids(tx, names):
    marks = ",".join("?" * len(set(names)))
    return dict(tx.rows(f"SELECT name, id FROM rooms WHERE name IN ({marks})", sorted(set(names))))


def schema_versions(tx: Tx) -> list[str]:
    """The Alembic revisions the database is at (one, on a linear history)."""
    return [version for version, in tx.rows("SELECT version_num FROM alembic_version")]


def last_seq(tx: Tx, room: str) -> int:
    return tx.value("SELECT last_seq FROM rooms WHERE name = ?", (room,)) or 0


def rooms(tx: Tx) -> list[tuple[str, int]]:
    """Every room as (name, last_seq), by name."""
    return tx.rows("SELECT name, last_seq FROM rooms ORDER BY name")


def visible_rooms(tx: Tx, user: str | None) -> list[tuple[str, int, bool]]:
    """(name, last_seq, private) of every public room and of the private rooms the user belongs to."""
    sql = "SELECT name, last_seq, private FROM rooms WHERE private = ?"
    params: list[Any] = [False]
    if user:
        sql += " OR id IN (SELECT room_id FROM room_members WHERE username_key = ?)"
        params.append(user.lower())
    return [(name, seq, bool(private)) for name, seq, private in tx.rows(sql + " ORDER BY name", params)]


def create_room(tx: Tx, name: str, owner: str, private: bool, now: int) -> int:
    """Insert a room with its owner as first member; its id. IntegrityError when the name is taken."""
    room_id = tx.value("INSERT INTO rooms (name, last_seq, created_at, private, owner) VALUES (?, 0, ?, ?, ?) "
                       "RETURNING id", (name, now, private, owner))
    tx.run("INSERT INTO room_members (room_id, username, username_key, added_at) VALUES (?, ?, ?, ?)",
           (room_id, owner, owner.lower(), now))
    return room_id


def rooms_and_marks(tx: Tx, limit: int) -> tuple[list[tuple[str, bool, int]], dict[tuple[str, str], int]]:
    """(name, private, last_rev) of every room and {(room, username key): last_read} of every read mark;
    at most limit + 1 of each, so that a caller can tell there are more."""
    rooms = [(name, bool(private), rev) for name, private, rev in
             tx.rows("SELECT name, private, last_rev FROM rooms LIMIT ?", (limit + 1,))]
    marks = tx.rows("SELECT r.name, rr.username_key, rr.last_read FROM room_reads rr "
                    "JOIN rooms r ON r.id = rr.room_id LIMIT ?", (limit + 1,))
    return rooms, {(name, key): mark for name, key, mark in marks}


def room_privacy(tx: Tx, name: str) -> tuple[bool, str | None] | None:
    found = tx.row("SELECT private, owner FROM rooms WHERE name = ?", (name,))
    return None if found is None else (bool(found[0]), found[1])


def is_room_member(tx: Tx, name: str, user: str) -> bool:
    return tx.row("SELECT 1 FROM room_members m JOIN rooms r ON r.id = m.room_id "
                  "WHERE r.name = ? AND m.username_key = ?", (name, user.lower())) is not None


def add_room_member(tx: Tx, room_id: int, user: str, now: int) -> None:
    """Insert a member; IntegrityError when it is one already."""
    tx.run("INSERT INTO room_members (room_id, username, username_key, added_at) VALUES (?, ?, ?, ?)",
           (room_id, user, user.lower(), now))


def room_members(tx: Tx, name: str) -> list[str]:
    return [row[0] for row in tx.rows("SELECT m.username FROM room_members m JOIN rooms r ON r.id = m.room_id "
                                      "WHERE r.name = ? ORDER BY m.id", (name,))]


def remove_room_member(tx: Tx, name: str, user: str) -> bool:
    """Delete a member of a room; whether it was one."""
    return tx.run("DELETE FROM room_members WHERE username_key = ? AND room_id = (SELECT id FROM rooms WHERE name = ?)",
                  (user.lower(), name)) > 0


def close_room(tx: Tx, name: str) -> list[str]:
    """Empty a private room for good: no owner, no members, no read marks, every message blanked; its members.

    The row stays, private and ownerless, so that its name is never reused and nobody is admitted.
    """
    members = room_members(tx, name)
    room_id = tx.value("SELECT id FROM rooms WHERE name = ?", (name,))
    tx.run("DELETE FROM room_members WHERE room_id = ?", (room_id,))
    tx.run("DELETE FROM room_reads WHERE room_id = ?", (room_id,))
    tx.run("UPDATE messages SET text = '', deleted = ?, reactions = NULL WHERE room_id = ?", (True, room_id))
    tx.run("UPDATE rooms SET owner = NULL, private = ? WHERE id = ?", (True, room_id))
    return members


# messages

def messages_after(tx: Tx, room: str, after: int, limit: int) -> list[dict]:
    """Messages with seq > after, oldest first, at most limit."""
    rows = tx.rows(f"{_MESSAGES} WHERE r.name = ? AND m.seq > ? ORDER BY m.seq LIMIT ?", (room, after, limit))
    return [wire.message(*row) for row in rows]


def messages_before(tx: Tx, room: str, before: int | None, limit: int) -> list[dict]:
    """The latest messages with seq < before (all when before is None), oldest first, at most limit."""
    rows = tx.rows(f"{_MESSAGES} WHERE r.name = ? AND m.seq < ? ORDER BY m.seq DESC LIMIT ?",
                   (room, MAX_INT if before is None else before, limit))
    return [wire.message(*row) for row in reversed(rows)]


def latest(tx: Tx, room: str, limit: int) -> tuple[list[dict], int]:
    """The room's latest messages, oldest first, and its last seq: what a process keeps of it in memory."""
    return messages_before(tx, room, None, limit), last_seq(tx, room)


def message_by_client_id(tx: Tx, room: str, author: str, client_id: str) -> dict | None:
    found = tx.row(f"{_MESSAGES} WHERE r.name = ? AND m.author = ? AND m.client_id = ?", (room, author, client_id))
    return wire.message(*found) if found else None


Counters = dict[str, list[int]]  # {room name: [room id, last seq]}, kept by the only server of a SQLite file


def insert_messages(tx: Tx, items: list[Item], now: int, counters: Counters | None = None) -> list[tuple[dict, bool]]:
    """Store the items with their rooms' next seqs, creating missing rooms; (message, created) for each, in order.

    A client_id repeated within the batch gets the first one's message. One already stored fails
    the whole batch on the unique constraint: the caller then stores the items one by one. With
    counters (SQLite, every room of the batch in them) the batch is one INSERT numbered from them.
    """
    if counters is not None:
        return _first_of_each(items, lambda fresh: _insert_counted(tx, fresh, counters))
    if not tx.postgres:
        return _first_of_each(items, lambda fresh: _insert_sqlite(tx, fresh, now))
    stored: list[Any] = insert_into_rooms(tx, items)
    missing = [i for i, outcome in enumerate(stored) if outcome is None]
    if missing:  # rooms no one joined yet: create them, then store their items
        room_ids(tx, sorted({items[i][0] for i in missing}), now)
        for i, outcome in zip(missing, insert_into_rooms(tx, [items[i] for i in missing]), strict=True):
            stored[i] = outcome
    return stored


def insert_into_rooms(tx: Tx, items: list[Item]) -> list[tuple[dict, bool] | None]:
    """PostgreSQL: store the items of rooms that exist in one statement; (message, created) for each, None where none.

    In autocommit mode the statement is its own transaction: one round trip for a batch, its rooms'
    rows held only while PostgreSQL runs it and commits.
    """
    return _first_of_each(items, lambda fresh: _insert_postgres(tx, fresh))


def _first_of_each(items: list[Item], insert: Callable[[list[Item]], list[tuple[int, int] | None]]) -> list[Any]:
    """(message, created) of each item, inserting only the first of those that repeat a client_id.

    insert gives (id, seq) of each item it is given, or None for one it could not store.
    """
    outcomes: list[Any] = [None] * len(items)
    first_of: dict[tuple, int] = {}  # {(room, author, client_id): index of its first item in this batch}
    fresh = []
    for index, (room, author, _, _, client_id) in enumerate(items):
        if client_id is not None:
            key = (room, author, client_id)
            if key in first_of:
                outcomes[index] = first_of[key]
                continue
            first_of[key] = index
        fresh.append(index)
    for index, numbered in zip(fresh, insert([items[i] for i in fresh]), strict=True):
        if numbered is not None:
            room, author, text, ts, client_id = items[index]
            outcomes[index] = (wire.message(numbered[0], room, numbered[1], author, text, ts, client_id), True)
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, int):
            first = outcomes[outcome]
            outcomes[index] = None if first is None else (first[0], False)
    return outcomes


def _insert_sqlite(tx, items, now):
    """Insert the items with their rooms' next seqs; (id, seq) of each, in order."""
    ids = _sqlite_room_ids(tx, sorted({item[0] for item in items}), now)
    next_seq = _take_seqs(tx, Counter(ids[item[0]] for item in items))
    rows = []
    for room, author, text, ts, client_id in items:
        room_id = ids[room]
        rows.append((room_id, next_seq[room_id], author, text, ts, client_id))
        next_seq[room_id] += 1
    return [(row_id, row[1]) for row_id, row in zip(_insert_rows(tx, rows), rows, strict=True)]


# On PostgreSQL a batch's statement holds its rooms' rows until its transaction commits, and every
# other process's batch to those rooms waits meanwhile. So a batch is one statement: it locks its rooms
# in name order (two processes' batches never deadlock), moves their counters and inserts the messages
# numbered back from each room's new last_seq. In autocommit mode it commits by itself (insert_into_rooms).
# The batch travels as one JSON parameter: psycopg adapts a list parameter element by element in
# Python, six lists a third of the writer's time under load; json.dumps is C (measured in architecture.md).
_INSERT_POSTGRES = (
    "WITH batch AS MATERIALIZED (SELECT * FROM json_to_recordset(?::json) "
    "AS b(room text, back int, author text, text text, ts bigint, client_id text)), "
    "counts AS (SELECT room, count(*) AS n FROM batch GROUP BY room), "
    "locked AS MATERIALIZED (SELECT id FROM rooms WHERE name IN (SELECT room FROM counts) ORDER BY name FOR UPDATE), "
    "moved AS (UPDATE rooms SET last_seq = rooms.last_seq + counts.n FROM counts "
    "WHERE rooms.name = counts.room AND rooms.id IN (SELECT id FROM locked) "
    "RETURNING rooms.id, rooms.name, rooms.last_seq), "
    "added AS (INSERT INTO messages (room_id, seq, author, text, ts, client_id) "
    "SELECT moved.id, moved.last_seq - batch.back, batch.author, batch.text, batch.ts, batch.client_id "
    "FROM batch JOIN moved ON moved.name = batch.room RETURNING id, room_id, seq) "
    "SELECT added.id, moved.name, added.seq FROM added JOIN moved ON moved.id = added.room_id")


def _insert_postgres(tx, items):
    """Insert the items of existing rooms numbered on from their last seqs, in one statement; (id, seq) or None each."""
    if not items:
        return []
    left = Counter(item[0] for item in items)
    backs = []  # per item: how many of its room's items come after it in the batch
    for room, *_ in items:
        left[room] -= 1
        backs.append(left[room])
    batch = [{"room": room, "back": back, "author": author, "text": text, "ts": ts, "client_id": client_id}
             for (room, author, text, ts, client_id), back in zip(items, backs, strict=True)]
    stored = tx.prepared_rows("papo_insert_batch", _INSERT_POSTGRES, (json.dumps(batch, separators=(",", ":")),))
    ids = {(name, seq): row_id for row_id, name, seq in stored}
    last: dict[str, int] = {}
    for _, name, seq in stored:
        last[name] = max(seq, last.get(name, 0))
    return [(ids[room, last[room] - back], last[room] - back) if room in last else None
            for (room, *_), back in zip(items, backs, strict=True)]


# On SQLite the writer is an OS thread that gives up the GIL at every step of a statement, and gets it
# back only when the event loop lets go: a result row costs it a wait. The file's only server numbers a
# batch from its counters, one INSERT (_insert_counted); otherwise the SQLite path of a batch is four
# statements of one step each, whatever its size: rows come back as one JSON value, and the new
# messages' ids follow from the last one (SQLite gives each new row the largest id so far plus one).

def room_counters(tx: Tx, names: list[str]) -> Counters:
    """{name: [id, last_seq]} of the rooms among names that exist, in one step."""
    marks = ",".join("?" * len(names))
    return json.loads(tx.value(f"SELECT json_group_object(name, json_array(id, last_seq)) FROM rooms "
                               f"WHERE name IN ({marks})", names))


def _insert_counted(tx, items, counters):
    """Insert the items numbered from counters, moved once they are stored; (id, seq) of each, in order.

    One statement, its own transaction when none is open; the trigger of migration 0010 moves the rooms' last_seq.
    """
    last = {room: counters[room][1] for room, *_ in items}
    rows = []
    for room, author, text, ts, client_id in items:
        last[room] += 1
        rows.append((counters[room][0], last[room], author, text, ts, client_id))
    ids = _insert_rows(tx, rows)
    for room, seq in last.items():
        counters[room][1] = seq
    return [(row_id, row[1]) for row_id, row in zip(ids, rows, strict=True)]


def _sqlite_room_ids(tx, names, now):
    """{name: id} of the rooms, creating the missing ones (public, with no owner), in one step when all exist."""
    marks = ",".join("?" * len(names))
    ids = json.loads(tx.value(f"SELECT json_group_object(name, id) FROM rooms WHERE name IN ({marks})", names))
    if len(ids) < len(names):
        return room_ids(tx, names, now)
    return ids


def _take_seqs(tx, counts):
    """Reserve `count` seqs in each room; {room id: the first one}. Two statements: SQLite locks the file anyway."""
    if not counts:
        return {}
    ordered = sorted(counts.items())
    cases = " ".join("WHEN ? THEN ?" for _ in ordered)
    marks = ",".join("?" * len(ordered))
    keys = [room_id for room_id, _ in ordered]
    tx.run(f"UPDATE rooms SET last_seq = last_seq + CASE id {cases} END WHERE id IN ({marks})",
           [value for pair in ordered for value in pair] + keys)
    seqs = json.loads(tx.value(f"SELECT json_group_object(id, last_seq) FROM rooms WHERE id IN ({marks})", keys))
    return {room_id: seqs[str(room_id)] - count + 1 for room_id, count in ordered}


def _insert_rows(tx, rows):
    """Insert (room_id, seq, author, text, ts, client_id) rows; their ids, in order."""
    if not rows:
        return []
    values = ",".join(["(?,?,?,?,?,?)"] * len(rows))
    sql = f"INSERT INTO messages (room_id, seq, author, text, ts, client_id) VALUES {values}"
    tx.run(sql, [value for row in rows for value in row])
    last = tx.cursor.lastrowid
    return list(range(last - len(rows) + 1, last + 1))


# changes to stored messages (edits, deletions, reactions), each with the room's next rev

Change = Callable[[dict], dict | None]  # the message -> the fields to change (text, edited_at, deleted, reactions)


def change_message(tx: Tx, room: str, seq: int, change: Change) -> tuple[dict, bool] | None:
    """Apply a change to a room's message with the room's next rev; (message, changed), or None when not stored.

    change may raise to refuse; it returns None (or nothing to change) for a repeat, which takes no rev.
    PostgreSQL locks the room's row first, so that changes from every process take revs one at a time.
    """
    if tx.postgres:
        tx.row("SELECT id FROM rooms WHERE name = ? FOR UPDATE", (room,))
    found = tx.row(f"{_MESSAGES} WHERE r.name = ? AND m.seq = ?", (room, seq))
    if found is None:
        return None
    before = wire.message(*found)
    updates = change(before)
    if not updates or all(before[key] == value for key, value in updates.items()):
        return before, False
    rev = tx.value("UPDATE rooms SET last_rev = last_rev + 1 WHERE name = ? RETURNING last_rev", (room,))
    after = {**before, **updates, "rev": rev}
    tx.run("UPDATE messages SET text = ?, edited_at = ?, deleted = ?, reactions = ?, rev = ? WHERE id = ?",
           (after["text"], after["edited_at"], after["deleted"],
            json.dumps(after["reactions"], ensure_ascii=False) if after["reactions"] else None, rev, int(after["id"])))
    indexed = not tx.postgres and int(before["id"]) <= _indexed_to(tx)  # else the catch-up indexes it as it is
    if indexed and (after["text"], after["deleted"]) != (before["text"], before["deleted"]):
        if not before["deleted"]:
            tx.run("INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', ?, ?)",
                   (int(before["id"]), before["text"]))
        if not after["deleted"]:
            tx.run("INSERT INTO messages_fts (rowid, text) VALUES (?, ?)", (int(after["id"]), after["text"]))
    return after, True


def last_rev(tx: Tx, room: str) -> int:
    return tx.value("SELECT last_rev FROM rooms WHERE name = ?", (room,)) or 0


def changed_since(tx: Tx, room: str, since: int, revs_since: int, limit: int) -> list[dict]:
    """The room's messages with seq <= since whose rev > revs_since, in rev order, at most limit."""
    # `m.rev > 0` lets the planner use the index of changed messages, which holds no other
    rows = tx.rows(f"{_MESSAGES} WHERE r.name = ? AND m.rev > 0 AND m.seq <= ? AND m.rev > ? ORDER BY m.rev LIMIT ?",
                   (room, since, revs_since, limit))
    return [wire.message(*row) for row in rows]


# read marks: the highest seq each user has read in each room

def mark_room_read(tx: Tx, room: str, user: str, seq: int) -> tuple[int, int] | None:
    """Raise the user's read mark in the room to seq (at most its last seq); (last_read, last_seq), None: no room."""
    found = tx.row("SELECT id, last_seq FROM rooms WHERE name = ?", (room,))
    if found is None:
        return None
    room_id, room_last = found
    larger = "GREATEST" if tx.postgres else "MAX"
    last_read = tx.value("INSERT INTO room_reads (room_id, username_key, last_read) VALUES (?, ?, ?) "
                         "ON CONFLICT (room_id, username_key) DO UPDATE "
                         f"SET last_read = {larger}(room_reads.last_read, excluded.last_read) RETURNING last_read",
                         (room_id, user.lower(), min(seq, room_last)))
    return last_read, room_last


def last_read(tx: Tx, room: str, user: str) -> int:
    return tx.value("SELECT rr.last_read FROM room_reads rr JOIN rooms r ON r.id = rr.room_id "
                    "WHERE r.name = ? AND rr.username_key = ?", (room, user.lower())) or 0


def read_marks(tx: Tx, user: str) -> dict[str, int]:
    """{room: last_read} of every room the user has marked read."""
    return dict(tx.rows("SELECT r.name, rr.last_read FROM room_reads rr JOIN rooms r ON r.id = rr.room_id "
                        "WHERE rr.username_key = ?", (user.lower(),)))


# full-text search: SQLite's FTS5 table, PostgreSQL's text search; snippets mark matches between two
# private-use characters, which become <mark> tags once the rest is escaped as HTML

_MARK, _UNMARK = "\ue000", "\ue001"
_WORD = re.compile(r"\w+")


def index_messages(tx: Tx, limit: int) -> bool:
    """Add up to limit messages stored since the last call to SQLite's search index; whether more are left.

    New messages are indexed here, not in the group commit, so that a message's commit costs what it
    did before search; each search first lets the writer run this until nothing is left.
    """
    if tx.postgres:
        return False  # PostgreSQL keeps its index itself
    start = _indexed_to(tx)
    end = min(tx.value("SELECT coalesce(max(id), 0) FROM messages"), start + limit)
    if end > start:
        tx.run("INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages "
               "WHERE id > ? AND id <= ? AND deleted = ?", (start, end, False))
        tx.run("UPDATE messages_fts_state SET indexed_to = ?", (end,))
    return tx.value("SELECT 1 FROM messages WHERE id > ? LIMIT 1", (end,)) is not None


def _indexed_to(tx):
    return tx.value("SELECT indexed_to FROM messages_fts_state")


def search(tx: Tx, user: str, q: str, room: str | None, limit: int) -> list[dict]:
    """The messages matching every word of q (the last as a prefix), newest first, in rooms the user may read."""
    words = [word.lower() for word in _WORD.findall(q)][:32]
    if not words:
        return []
    if tx.postgres:  # PostgreSQL's ts_headline drops what looks like markup: the snippet is made here instead
        match = " & ".join(f"'{word}'" for word in words) + ":*"
        sql = (f"SELECT {_MESSAGE_COLUMNS}, NULL FROM messages m JOIN rooms r ON r.id = m.room_id "
               "WHERE to_tsvector('simple', m.text) @@ to_tsquery('simple', ?)")
        params: list[Any] = [match]
    else:
        match = " ".join(f'"{word}"' for word in words) + "*"
        sql = (f"SELECT {_MESSAGE_COLUMNS}, snippet(messages_fts, 0, '{_MARK}', '{_UNMARK}', '…', 16) "
               "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid JOIN rooms r ON r.id = m.room_id "
               "WHERE messages_fts MATCH ?")
        params = [match]
    sql += (" AND m.deleted = ? AND (r.private = ? OR r.id IN (SELECT room_id FROM room_members "
            "WHERE username_key = ?))")
    params += [False, False, user.lower()]
    if room is not None:
        sql += " AND r.name = ?"
        params.append(room)
    rows = tx.rows(sql + " ORDER BY m.id DESC LIMIT ?", [*params, limit])
    return [{**wire.message(*row[:-1]), "snippet": _marked(row[-1] or _snippet(row[4], words))} for row in rows]


def index_directs(tx: Tx, limit: int) -> bool:
    """index_messages for the direct messages (never edited nor deleted: only new ones are added)."""
    if tx.postgres:
        return False
    start = tx.value("SELECT indexed_to FROM directs_fts_state")
    end = min(tx.value("SELECT coalesce(max(id), 0) FROM directs"), start + limit)
    if end > start:
        tx.run("INSERT INTO directs_fts (rowid, text) SELECT id, text FROM directs WHERE id > ? AND id <= ?",
               (start, end))
        tx.run("UPDATE directs_fts_state SET indexed_to = ?", (end,))
    return tx.value("SELECT 1 FROM directs WHERE id > ? LIMIT 1", (end,)) is not None


def directs_to_index(tx: Tx) -> bool:
    """Whether SQLite's search index lacks a direct message: a read, so a search takes the writer only if so."""
    return not tx.postgres and tx.value("SELECT 1 FROM directs WHERE id > (SELECT indexed_to FROM directs_fts_state) "
                                        "LIMIT 1") is not None


def search_directs(tx: Tx, user: str, q: str, peer: str | None, limit: int) -> list[dict]:
    """The direct messages matching q that the user sent or received (only with peer if given), newest first.

    Each is a direct message with "kind": "direct", "peer" (the other user) and "snippet", marked as search's.
    """
    words = [word.lower() for word in _WORD.findall(q)][:32]
    if not words:
        return []
    columns = "d.id, d.sender, d.recipient, d.text, d.ts, d.client_id"
    if tx.postgres:
        sql = (f"SELECT {columns}, NULL FROM directs d "
               "WHERE to_tsvector('simple', d.text) @@ to_tsquery('simple', ?)")
        params: list[Any] = [" & ".join(f"'{word}'" for word in words) + ":*"]
    else:
        sql = (f"SELECT {columns}, snippet(directs_fts, 0, '{_MARK}', '{_UNMARK}', '…', 16) "
               "FROM directs_fts JOIN directs d ON d.id = directs_fts.rowid WHERE directs_fts MATCH ?")
        params = [" ".join(f'"{word}"' for word in words) + "*"]
    if peer is None:
        sql += " AND (d.sender = ? OR d.recipient = ?)"
        params += [user, user]
    else:
        sql += " AND ((d.sender = ? AND d.recipient = ?) OR (d.sender = ? AND d.recipient = ?))"
        params += [user, peer, peer, user]
    rows = tx.rows(sql + " ORDER BY d.id DESC LIMIT ?", [*params, limit])
    found = []
    for row in rows:
        message = wire.direct(*row[:-1])
        other = message["to"] if message["from"] == user else message["from"]
        found.append({"kind": "direct", "peer": other, **message,
                      "snippet": _marked(row[-1] or _snippet(message["text"], words))})
    return found


def _snippet(text: str, words: list[str], around: int = 60) -> str:
    """Up to `around` characters either side of the first match, with every word that starts like one marked."""
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(word) for word in words) + r")\w*", re.IGNORECASE)
    first = pattern.search(text)
    start = 0 if first is None else max(0, first.start() - around)
    end = len(text) if first is None else min(len(text), first.end() + around)
    cut = pattern.sub(lambda match: _MARK + match.group(0) + _UNMARK, text[start:end])
    return ("…" if start else "") + cut + ("…" if end < len(text) else "")


def _marked(snippet: str) -> str:
    """The snippet as HTML: the message's text escaped, the matches in <mark>."""
    return html.escape(snippet, quote=False).replace(_MARK, "<mark>").replace(_UNMARK, "</mark>")


# direct messages

def direct_by_client_id(tx: Tx, sender: str, client_id: str) -> dict | None:
    found = tx.row(f"{_DIRECTS} WHERE sender = ? AND client_id = ?", (sender, client_id))
    return wire.direct(*found) if found else None


def add_direct(tx: Tx, sender: str, recipient: str, text: str, ts: int, client_id: str | None) -> dict:
    if tx.postgres:  # one conversation's ids commit in order, so that `since` on reconnect never skips one
        tx.row("SELECT pg_advisory_xact_lock(hashtext(?))", ("directs:" + _pair_key(sender, recipient),))
    row_id = tx.value("INSERT INTO directs (sender, recipient, text, ts, client_id) VALUES (?, ?, ?, ?, ?) "
                      "RETURNING id", (sender, recipient, text, ts, client_id))
    return wire.direct(row_id, sender, recipient, text, ts, client_id)


def directs_between(tx: Tx, user: str, peer: str, before: int | None, limit: int) -> list[dict]:
    """The latest direct messages between two users with id < before (all when None), oldest first."""
    rows = tx.rows(f"{_DIRECTS} WHERE ((sender = ? AND recipient = ?) OR (sender = ? AND recipient = ?)) "
                   "AND id < ? ORDER BY id DESC LIMIT ?",
                   (user, peer, peer, user, MAX_INT if before is None else before, limit))
    return [wire.direct(*row) for row in reversed(rows)]


def _pair_key(a: str, b: str) -> str:
    return "|".join(sorted((a.lower(), b.lower())))


_PAIR = "((sender = ? AND recipient = ?) OR (sender = ? AND recipient = ?))"


def directs_after(tx: Tx, user: str, peer: str, after: int, limit: int) -> list[dict]:
    """The direct messages between two users with id > after, oldest first, at most limit."""
    rows = tx.rows(f"{_DIRECTS} WHERE {_PAIR} AND id > ? ORDER BY id LIMIT ?", (user, peer, peer, user, after, limit))
    return [wire.direct(*row) for row in rows]


# read marks of direct conversations: the highest direct message id each user has read from each peer

def mark_direct_read(tx: Tx, user: str, peer: str, upto: int) -> int:
    """Raise the user's mark in the conversation to its last message with id <= upto (never lower it); the mark."""
    top = tx.value(f"SELECT max(id) FROM directs WHERE {_PAIR} AND id <= ?", (user, peer, peer, user, upto))
    if top is None:
        return direct_last_read(tx, user, peer)
    larger = "GREATEST" if tx.postgres else "MAX"
    return tx.value("INSERT INTO direct_reads (username_key, peer_key, last_read) VALUES (?, ?, ?) "
                    "ON CONFLICT (username_key, peer_key) DO UPDATE "
                    f"SET last_read = {larger}(direct_reads.last_read, excluded.last_read) RETURNING last_read",
                    (user.lower(), peer.lower(), top))


def direct_last_read(tx: Tx, user: str, peer: str) -> int:
    return tx.value("SELECT last_read FROM direct_reads WHERE username_key = ? AND peer_key = ?",
                    (user.lower(), peer.lower())) or 0


def direct_unread(tx: Tx, user: str, peer: str) -> int:
    """How many of the peer's messages to the user come after the user's read mark (none from oneself)."""
    if user.lower() == peer.lower():
        return 0
    return tx.value("SELECT count(*) FROM directs WHERE sender = ? AND recipient = ? AND id > ?",
                    (peer, user, direct_last_read(tx, user, peer)))


def direct_state(tx: Tx, user: str, peer: str) -> dict[str, int]:
    """The read state of one conversation for the user: last_read, unread and the peer's peer_last_read."""
    return {"last_read": direct_last_read(tx, user, peer), "unread": direct_unread(tx, user, peer),
            "peer_last_read": direct_last_read(tx, peer, user)}


def conversations(tx: Tx, user: str, limit: int) -> list[dict]:
    """The user's direct conversations, the latest message's first, each with its last message and read state."""
    rows = tx.rows("SELECT peer, max(id) FROM (SELECT recipient AS peer, id FROM directs WHERE sender = ? "
                   "UNION ALL SELECT sender AS peer, id FROM directs WHERE recipient = ?) pairs "
                   "GROUP BY peer ORDER BY max(id) DESC LIMIT ?", (user, user, limit))
    if not rows:
        return []
    marks = ",".join("?" * len(rows))
    last = {row[0]: wire.direct(*row) for row in tx.rows(f"{_DIRECTS} WHERE id IN ({marks})", [r[1] for r in rows])}
    key = user.lower()
    mine = dict(tx.rows("SELECT peer_key, last_read FROM direct_reads WHERE username_key = ?", (key,)))
    theirs = dict(tx.rows("SELECT username_key, last_read FROM direct_reads WHERE peer_key = ?", (key,)))
    unread = {sender.lower(): count for sender, count in tx.rows(
        "SELECT d.sender, count(*) FROM directs d LEFT JOIN direct_reads r "
        "ON r.username_key = ? AND r.peer_key = lower(d.sender) "
        "WHERE d.recipient = ? AND d.sender <> d.recipient AND d.id > coalesce(r.last_read, 0) GROUP BY d.sender",
        (key, user))}
    return [{"with": peer, "last_message": last[last_id], "last_read": mine.get(peer.lower(), 0),
             "unread": unread.get(peer.lower(), 0), "peer_last_read": theirs.get(peer.lower(), 0)}
            for peer, last_id in rows]


# room read receipts

def room_readers(tx: Tx, room: str, limit: int) -> dict[str, int]:
    """{username: last_read} of the users who read the furthest in the room, at most limit."""
    return dict(tx.rows("SELECT u.username, rr.last_read FROM room_reads rr JOIN rooms r ON r.id = rr.room_id "
                        "JOIN users u ON u.username_key = rr.username_key WHERE r.name = ? "
                        "ORDER BY rr.last_read DESC, u.username LIMIT ?", (room, limit)))


# notifications to one user, kept until read

def add_notification(tx: Tx, recipient: str, title: str, body: str, level: str, ts: int) -> dict:
    row_id = tx.value("INSERT INTO notifications (recipient, title, body, level, ts) VALUES (?, ?, ?, ?, ?) "
                      "RETURNING id", (recipient, title, body, level, ts))
    return wire.notification(row_id, recipient, title, body, level, ts, None)


def notifications(tx: Tx, recipient: str, after: int | None, limit: int, unread: bool) -> list[dict]:
    """The user's notifications oldest first: those with id > after, else the latest; at most limit."""
    sql = f"{_NOTIFICATIONS} WHERE recipient = ?" + (" AND read_at IS NULL" if unread else "")
    if after is not None:
        rows = tx.rows(f"{sql} AND id > ? ORDER BY id LIMIT ?", (recipient, after, limit))
    else:
        rows = tx.rows(f"{sql} ORDER BY id DESC LIMIT ?", (recipient, limit))[::-1]
    return [wire.notification(*row) for row in rows]


def unread_of_users(tx: Tx, recipients: list[str], limit: int) -> dict[str, list[dict]]:
    """{recipient: the latest `limit` of its unread notifications, oldest first} of those that have any."""
    marks = ",".join("?" * len(recipients))
    rows = tx.rows("SELECT id, recipient, title, body, level, ts, read_at FROM ("
                   "SELECT *, row_number() OVER (PARTITION BY recipient ORDER BY id DESC) AS latest "
                   f"FROM notifications WHERE recipient IN ({marks}) AND read_at IS NULL"
                   ") AS unread WHERE latest <= ? ORDER BY recipient, id", [*recipients, limit])
    found: dict[str, list[dict]] = {}
    for row in rows:
        found.setdefault(row[1], []).append(wire.notification(*row))
    return found


def unread_count(tx: Tx, recipient: str) -> int:
    return tx.value("SELECT count(*) FROM notifications WHERE recipient = ? AND read_at IS NULL", (recipient,))


def mark_read(tx: Tx, recipient: str, ids: list[int] | None, up_to: int | None, now: int) -> list[int]:
    """Mark the user's unread notifications read, by id or every one up to an id; the ids marked."""
    sql = "SELECT id FROM notifications WHERE recipient = ? AND read_at IS NULL AND "
    if ids is not None:
        if not ids:
            return []
        found = tx.rows(sql + f"id IN ({','.join('?' * len(ids))})", [recipient, *ids])
    else:
        found = tx.rows(sql + "id <= ?", (recipient, up_to))
    marked = sorted(row[0] for row in found)
    if marked:
        tx.run(f"UPDATE notifications SET read_at = ? WHERE id IN ({','.join('?' * len(marked))})", [now, *marked])
    return marked


# sessions: a token or cookie session lives until expires_at unless revoked first

class SessionRow(NamedTuple):
    username: str
    expires_at: int
    revoked_at: int | None


def set_password(tx: Tx, username: str, password_hash: str) -> int:
    return tx.run("UPDATE users SET password_hash = ? WHERE username_key = ?", (password_hash, username.lower()))


def add_session(tx: Tx, session_id: str, username: str, kind: str, now: int, expires_at: int) -> None:
    tx.run("INSERT INTO sessions (id, username, username_key, kind, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
           (session_id, username, username.lower(), kind, now, expires_at))


def find_session(tx: Tx, session_id: str) -> SessionRow | None:
    found = tx.row("SELECT username, expires_at, revoked_at FROM sessions WHERE id = ?", (session_id,))
    return SessionRow(*found) if found else None


def extend_session(tx: Tx, session_id: str, expires_at: int) -> int:
    """Move a live session's expiry (a refresh); how many rows (0 when it was revoked meanwhile)."""
    return tx.run("UPDATE sessions SET expires_at = ? WHERE id = ? AND revoked_at IS NULL", (expires_at, session_id))


def revoke_sessions(tx: Tx, username: str, ids: list[str] | None, keep: str | None, now: int,
                    code: str | None = None) -> list[str]:
    """Revoke the user's live sessions (only those in ids, when given; never keep) for code; the ids revoked."""
    sql = "SELECT id FROM sessions WHERE username_key = ? AND expires_at > ? AND revoked_at IS NULL"
    params: list[Any] = [username.lower(), now]
    if ids is not None:
        if not ids:
            return []
        sql += f" AND id IN ({','.join('?' * len(ids))})"
        params.extend(ids)
    found = [row[0] for row in tx.rows(sql, params) if row[0] != keep]
    for session_id in found:
        tx.run("UPDATE sessions SET revoked_at = ?, revoked_code = ? WHERE id = ?", (now, code, session_id))
    return found


def revoked_among(tx: Tx, ids: tuple[str, ...]) -> dict[str, str | None]:
    """{id: the code it was revoked for (None if not kept)} of the revoked sessions among ids."""
    if not ids:
        return {}
    rows = tx.rows(f"SELECT id, revoked_code FROM sessions WHERE revoked_at IS NOT NULL AND id IN "
                   f"({','.join('?' * len(ids))})", list(ids))
    return {session_id: code for session_id, code in rows}


def forget_sessions(tx: Tx, before: int) -> int:
    """Delete the sessions that expired before a time; how many."""
    return tx.run("DELETE FROM sessions WHERE expires_at < ?", (before,))
