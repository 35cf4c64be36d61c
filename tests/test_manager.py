"""The client manager's room index gives python-socketio's answers without scanning every room."""
import socketio
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.manager import LocalManager

SIDS = [f"s{i}" for i in range(5)]
ROOMS = ["a", "b", "c"]
operation = st.one_of(
    st.tuples(st.just("connect"), st.sampled_from(SIDS)),
    st.tuples(st.just("enter"), st.sampled_from(SIDS), st.sampled_from(ROOMS)),
    st.tuples(st.just("leave"), st.sampled_from(SIDS), st.sampled_from(ROOMS)),
    st.tuples(st.just("disconnect"), st.sampled_from(SIDS)),
)


def apply(manager, op):
    kind, sid = op[0], op[1]
    try:
        if kind == "connect":
            manager.basic_enter_room(sid, "/", None, eio_sid="e" + sid)
            manager.basic_enter_room(sid, "/", sid, eio_sid="e" + sid)
        elif kind == "enter":
            manager.basic_enter_room(sid, "/", op[2])
        elif kind == "leave":
            manager.basic_leave_room(sid, "/", op[2])
        else:
            manager.basic_disconnect(sid, "/")
        return None
    except Exception as error:  # the same refusal from both, e.g. entering a room before connecting
        return type(error)


@settings(max_examples=300, deadline=None)
@given(st.lists(operation, max_size=40))
def test_any_sequence_of_room_operations_ends_as_python_socketio_would(ops):
    ours, theirs = LocalManager(), socketio.Manager()
    for op in ops:
        assert apply(ours, op) == apply(theirs, op)
    assert {ns: {r: dict(m) for r, m in rooms.items()} for ns, rooms in ours.rooms.items()} == \
           {ns: {r: dict(m) for r, m in rooms.items()} for ns, rooms in theirs.rooms.items()}
    for sid in SIDS:
        assert sorted(ours.get_rooms(sid, "/"), key=str) == sorted(theirs.get_rooms(sid, "/"), key=str)


def test_a_disconnect_leaves_every_room_and_forgets_the_connection():
    manager = LocalManager()
    manager.basic_enter_room("s1", "/", None, eio_sid="e1")
    manager.basic_enter_room("s1", "/", "s1", eio_sid="e1")
    manager.basic_enter_room("s1", "/", "room:a")
    manager.basic_disconnect("s1", "/")
    assert manager.rooms == {} and manager.memberships == {}
