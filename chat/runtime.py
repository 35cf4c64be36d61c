"""Transitional: the async-mode shims moved to chat.async_modes; importers switch over, then this goes."""
from .async_modes import cooperation, offload, short_lock

__all__ = ["cooperation", "offload", "short_lock"]
