from chat.presence import Presence


def test_a_user_with_two_connections_is_one_member():
    presence = Presence()
    presence.connect("s1", "ana")
    presence.connect("s2", "ana")
    assert presence.join("s1", "lobby") is True
    assert presence.join("s2", "lobby") is False
    assert presence.members("lobby") == ["ana"]
    assert presence.leave("s1", "lobby") is False
    assert presence.members("lobby") == ["ana"]
    assert presence.leave("s2", "lobby") is True
    assert presence.members("lobby") == []


def test_disconnect_reports_the_rooms_the_user_left_entirely():
    presence = Presence()
    presence.connect("s1", "ana")
    presence.connect("s2", "ana")
    presence.join("s1", "a")
    presence.join("s1", "b")
    presence.join("s2", "b")
    assert presence.disconnect("s1") == ["a"]
    assert presence.room_sizes() == {"b": 1}
    assert presence.connection_count() == 1


def test_leaving_a_room_never_joined_is_harmless():
    presence = Presence()
    presence.connect("s1", "ana")
    assert presence.leave("s1", "nowhere") is False
    assert presence.is_member("s1", "nowhere") is False
