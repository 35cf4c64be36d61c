"""The wire shapes of stored rows: a Message, a DirectMessage and a Notification as clients receive them."""
import json
from typing import Any


def message(row_id: int, room: str, seq: int, author: str, text: str, ts: int, client_id: str | None,
            rev: int = 0, edited_at: int | None = None, deleted: Any = False,
            reactions: str | None = None) -> dict[str, Any]:
    return {"id": str(row_id), "room": room, "seq": seq, "user": author, "text": text, "ts": ts,
            "client_id": client_id, "rev": rev, "edited_at": edited_at, "deleted": bool(deleted),
            "reactions": json.loads(reactions) if reactions else {}}


def direct(row_id: int, sender: str, recipient: str, text: str, ts: int, client_id: str | None) -> dict[str, Any]:
    return {"id": "d" + str(row_id), "from": sender, "to": recipient, "text": text, "ts": ts,
            "client_id": client_id}


def notification(row_id: int, recipient: str, title: str, body: str, level: str, ts: int,
                 read_at: int | None) -> dict[str, Any]:
    return {"id": "n" + str(row_id), "title": title, "body": body, "level": level, "ts": ts,
            "user": recipient, "read": read_at is not None}
