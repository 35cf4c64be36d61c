"""The parts create_app assembles, and how adapters reach them during a request or an event."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app

if TYPE_CHECKING:  # the parts' own modules import this one to reach them
    from .auth import Identity
    from .config import Settings
    from .limits import Guard
    from .metrics import Metrics
    from .monitor import Monitor
    from .service import ChatService
    from .store import Store


@dataclass
class Papo:
    """One app's settings and services."""

    settings: Settings
    store: Store
    service: ChatService
    identity: Identity
    socketio: Any  # flask_socketio.SocketIO
    guard: Guard
    metrics: Metrics
    monitor: Monitor


def papo() -> Papo:
    """Return the Papo parts of the app handling this request or event."""
    return current_app.extensions["papo"]
