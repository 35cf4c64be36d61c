"""The parts create_app assembles, and how adapters reach them during a request or an event."""
from dataclasses import dataclass

from flask import current_app


@dataclass
class Papo:
    """One app's settings and services."""

    settings: object
    store: object
    service: object
    identity: object
    socketio: object
    guard: object = None  # chat.limits.Guard
    metrics: object = None


def papo():
    """The Papo parts of the app handling this request or event."""
    return current_app.extensions["papo"]
