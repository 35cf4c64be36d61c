"""python-socketio's client managers, with an index of the rooms each connection is in.

python-socketio finds a connection's rooms by scanning every room of the namespace, and every
connection has a room of its own: with 10,000 connections one disconnect checked 10,000 rooms, and
10,000 connections leaving at once (a restart, a network blip) cost about a minute of CPU.
"""
import socketio

from chat import internals


class RoomIndex:
    """Keeps {(namespace, sid): set of rooms} beside python-socketio's rooms, the sid's own and None included."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.memberships = {}

    def basic_enter_room(self, sid, namespace, room, eio_sid=None):
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.memberships.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid, namespace, room):
        super().basic_leave_room(sid, namespace, room)
        rooms = self.memberships.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self.memberships[(namespace, sid)]

    def basic_disconnect(self, sid, namespace, **kwargs):
        """The base class's disconnect, leaving only the rooms the index names."""
        for room in list(self.memberships.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        internals.forget_connection(self, sid, namespace)

    def get_rooms(self, sid, namespace):
        return [room for room in self.memberships.get((namespace, sid), ()) if room is not None]


class LocalManager(RoomIndex, socketio.Manager):
    """The client manager of a single process."""
