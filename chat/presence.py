"""Who is in which room, per user and per connection: in memory, or in Redis across processes."""
import json
import logging
import threading
import uuid

log = logging.getLogger(__name__)


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

    def heartbeat(self):
        """Keep this process's share of presence alive; [(room, user, "join"|"leave")] to announce.

        Memory is never shared, so nothing changes behind its back.
        """
        return []


class RedisPresence(Presence):
    """Presence shared by every process through Redis, each process renewing a lease on its connections.

    The in-memory bookkeeping above stays the truth about this process's own connections; Redis
    holds everyone's. Redis shapes, under P = "<prefix>:presence":
      P:procs               zset {process id: last heartbeat, in ms of Redis's clock}
      P:proc:<process>      set {sid} of that process's connections
      P:conn:<sid>          string: the connection's user
      P:joined:<sid>        set {room} the connection joined
      P:sids:<room>:<user>  set {sid}: the user's connections in the room
      P:room:<room>         hash {user: number of the user's connections in the room}
      P:rooms               set {room} with at least one member
    Every change that decides a join or leave event runs as one Lua script, so exactly one
    process sees a user's first arrival and last departure, and one reclaims a dead process.
    """

    def __init__(self, client, prefix="papo", lease=5.0):
        from redis import RedisError  # here, not with the module: a server of one process never loads redis-py

        super().__init__()
        self.redis = client
        self._redis_error = RedisError
        self.key = prefix + ":presence"
        self.process = uuid.uuid4().hex
        self.lease_ms = int(lease * 1000)
        self._io = threading.RLock()
        self._stale = True  # Redis may lack this process's state (never written, lost, failed write)
        self._join = client.register_script(_LUA + _JOIN)
        self._leave = client.register_script(_LUA + _LEAVE)
        self._forget = client.register_script(_LUA + _FORGET)
        self._beat = client.register_script(_LUA + _BEAT)
        self._resync = client.register_script(_LUA + _RESYNC)

    def connect(self, sid, user):
        with self._io:
            super().connect(sid, user)
            self._tolerate(lambda: self.redis.pipeline().set(f"{self.key}:conn:{sid}", user)
                           .sadd(f"{self.key}:proc:{self.process}", sid).execute())

    def join(self, sid, room):
        with self._io:
            user = self._users[sid]
            first = self._join(args=[self.key, self.process, sid, user, room])
            super().join(sid, room)
            return bool(first)

    def leave(self, sid, room):
        with self._io:
            user = self.user_of(sid)
            super().leave(sid, room)
            if user is None:
                return False
            return bool(self._tolerate(lambda: self._leave(args=[self.key, sid, user, room])))

    def disconnect(self, sid):
        with self._io:
            left = super().disconnect(sid)
            self._tolerate(lambda: self._forget(args=[self.key, self.process, sid]))
            return left

    def members(self, room):
        return sorted(self.redis.hkeys(f"{self.key}:room:{room}"))

    def sids_of(self, user, room):
        """The user's connections in the room, in every process."""
        return sorted(self.redis.smembers(f"{self.key}:sids:{room}:{user}"))

    def room_sizes(self):
        rooms = sorted(self.redis.smembers(f"{self.key}:rooms"))
        pipe = self.redis.pipeline(transaction=False)
        for room in rooms:
            pipe.hlen(f"{self.key}:room:{room}")
        return {room: size for room, size in zip(rooms, pipe.execute(), strict=True) if size}

    def ping(self):
        self.redis.ping()

    def heartbeat(self):
        """Renew this process's lease and reclaim expired ones; the joins and leaves to announce.

        When Redis lost this process's state (restarted empty, or reclaimed it after a long stall),
        the state is written again from memory and only the net difference is announced.
        """
        with self._io:
            changes = []
            if not self._stale:
                found = self._beat(args=[self.key, self.process, self.lease_ms])
                self._stale = not found[0]
                changes = _triples(found[1:])
            if self._stale:
                with self._lock:
                    state = [[sid, user, sorted(self._joined.get(sid, ()))] for sid, user in self._users.items()]
                changes += _triples(self._resync(args=[self.key, self.process, json.dumps(state)]))
                self._stale = False
            return changes

    def _tolerate(self, write):
        """Run a write that must not fail the caller; a failure leaves the state to the next heartbeat."""
        try:
            return write()
        except self._redis_error as error:
            self._stale = True
            log.warning("presence write failed, will resync: %s", error)
            return None


def _triples(flat):
    return [tuple(flat[i:i + 3]) for i in range(0, len(flat), 3)]


# Lua shared by the scripts: ARGV[1] is always the key prefix P.
_LUA = """
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function join(sid, user, room)
  if redis.call('SADD', P .. ':joined:' .. sid, room) == 0 then return false end
  local sids = P .. ':sids:' .. room .. ':' .. user
  redis.call('SADD', sids, sid)
  local count = redis.call('SCARD', sids)
  redis.call('HSET', P .. ':room:' .. room, user, count)
  redis.call('SADD', P .. ':rooms', room)
  return count == 1
end
local function leave(sid, user, room)
  if redis.call('SREM', P .. ':joined:' .. sid, room) == 0 then return false end
  local sids = P .. ':sids:' .. room .. ':' .. user
  redis.call('SREM', sids, sid)
  local count = redis.call('SCARD', sids)
  if count > 0 then
    redis.call('HSET', P .. ':room:' .. room, user, count)
    return false
  end
  redis.call('HDEL', P .. ':room:' .. room, user)
  if redis.call('HLEN', P .. ':room:' .. room) == 0 then redis.call('SREM', P .. ':rooms', room) end
  return true
end
local function drop(sid, out)
  local user = redis.call('GET', P .. ':conn:' .. sid)
  if user then
    for _, room in ipairs(redis.call('SMEMBERS', P .. ':joined:' .. sid)) do
      if leave(sid, user, room) then out[room .. '\\n' .. user] = {room, user} end
    end
  end
  redis.call('DEL', P .. ':joined:' .. sid, P .. ':conn:' .. sid)
end
local function drop_process(process, out)
  for _, sid in ipairs(redis.call('SMEMBERS', P .. ':proc:' .. process)) do drop(sid, out) end
  redis.call('DEL', P .. ':proc:' .. process)
end
"""

# ARGV: P, process, sid, user, room -> 1 when the user was not in the room before.
_JOIN = """
redis.call('SET', P .. ':conn:' .. ARGV[3], ARGV[4])
redis.call('SADD', P .. ':proc:' .. ARGV[2], ARGV[3])
if join(ARGV[3], ARGV[4], ARGV[5]) then return 1 end
return 0
"""

# ARGV: P, sid, user, room -> 1 when that was the user's last connection in the room.
_LEAVE = """
if leave(ARGV[2], ARGV[3], ARGV[4]) then return 1 end
return 0
"""

# ARGV: P, process, sid: forget a connection whose rooms were already left.
_FORGET = """
local out = {}
drop(ARGV[3], out)
redis.call('SREM', P .. ':proc:' .. ARGV[2], ARGV[3])
return 0
"""

# ARGV: P, process, lease ms -> {1 if the process still held its lease else 0, room, user, "leave", ...}
# for the users who left a room entirely because the processes holding them stopped beating.
_BEAT = """
local now = now_ms()
local present = redis.call('ZSCORE', P .. ':procs', ARGV[2])
if present then redis.call('ZADD', P .. ':procs', now, ARGV[2]) end
local out = {}
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', P .. ':procs', '-inf', now - tonumber(ARGV[3]))) do
  redis.call('ZREM', P .. ':procs', dead)
  drop_process(dead, out)
end
local reply = {present and 1 or 0}
for _, pair in pairs(out) do
  table.insert(reply, pair[1]); table.insert(reply, pair[2]); table.insert(reply, 'leave')
end
return reply
"""

# ARGV: P, process, JSON [[sid, user, [room, ...]], ...]: replace what Redis holds for the process
# with its memory and take the lease -> {room, user, "join"|"leave", ...}, the net changes only.
_RESYNC = """
local before, after = {}, {}
drop_process(ARGV[2], before)
for _, conn in ipairs(cjson.decode(ARGV[3])) do
  local sid, user = conn[1], conn[2]
  redis.call('SET', P .. ':conn:' .. sid, user)
  redis.call('SADD', P .. ':proc:' .. ARGV[2], sid)
  for _, room in ipairs(conn[3]) do
    if join(sid, user, room) then after[room .. '\\n' .. user] = {room, user} end
  end
end
redis.call('ZADD', P .. ':procs', now_ms(), ARGV[2])
local reply = {}
for key, pair in pairs(before) do
  if not after[key] then table.insert(reply, pair[1]); table.insert(reply, pair[2]); table.insert(reply, 'leave') end
end
for key, pair in pairs(after) do
  if not before[key] then table.insert(reply, pair[1]); table.insert(reply, pair[2]); table.insert(reply, 'join') end
end
return reply
"""
