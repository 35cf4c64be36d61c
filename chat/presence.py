"""Who is in which room, per user and per connection."""
import threading


class Presence:
    """In-memory presence for one process; the bookkeeping every backend shares.

    Shapes: _rooms = {room: {user: {sid, ...}}}, _users = {sid: user}, _joined = {sid: {room, ...}}.
    """

    def __init__(self):
        self._rooms = {}
        self._users = {}
        self._joined = {}
        self._lock = threading.Lock()

    def connect(self, sid, user):
        with self._lock:
            self._users[sid] = user
            self._joined[sid] = set()

    def user_of(self, sid):
        return self._users.get(sid)

    def rooms_of(self, sid):
        return sorted(self._joined.get(sid, ()))

    def join(self, sid, room):
        """Add the connection to the room; True when its user was not there before."""
        with self._lock:
            user = self._users[sid]
            self._joined[sid].add(room)
            sids = self._rooms.setdefault(room, {}).setdefault(user, set())
            first = not sids
            sids.add(sid)
            return first

    def leave(self, sid, room):
        """Take the connection out of the room; True when it was its user's last one there."""
        with self._lock:
            user = self._users.get(sid)
            self._joined.get(sid, set()).discard(room)
            members = self._rooms.get(room, {})
            sids = members.get(user)
            if not sids or sid not in sids:
                return False
            sids.discard(sid)
            if sids:
                return False
            del members[user]
            if not members:
                del self._rooms[room]
            return True

    def disconnect(self, sid):
        """Forget the connection; the rooms its user has now left entirely."""
        left = [room for room in self.rooms_of(sid) if self.leave(sid, room)]
        with self._lock:
            self._users.pop(sid, None)
            self._joined.pop(sid, None)
        return left

    def is_member(self, sid, room):
        return room in self._joined.get(sid, ())

    def members(self, room):
        return sorted(self._rooms.get(room, ()))

    def sids_of(self, user, room):
        """The user's connections in the room."""
        return sorted(self._rooms.get(room, {}).get(user, ()))

    def room_sizes(self):
        """{room: number of users} for every occupied room."""
        return {room: len(members) for room, members in list(self._rooms.items())}

    def connection_count(self):
        return len(self._users)

    def ping(self):
        """Raise when the backend is unreachable; memory always answers."""
