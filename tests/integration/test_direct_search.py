"""Search over direct messages against a real server process: found by the pair alone, right after sending,
and still after kill -9 and a restart (the index catches up from the database, never from memory)."""
from tests.servers import DEFAULT_MODE, register, request

from .client import ChatClient
from .conftest import start_server


def found(url, token, q):
    status, body = request(url, "GET", f"/api/search?q={q}", token=token)
    assert status == 200
    return [(m["kind"], m.get("peer"), m["text"]) for m in body["results"]]


def test_a_dm_is_found_by_its_pair_only_also_after_kill_9(tmp_path_factory):
    server = start_server(DEFAULT_MODE, tmp_path_factory)
    try:
        ana, bo, cy = (register(server.url, name) for name in ("ana", "bo", "cy"))
        with ChatClient(server.url, ana) as client:
            assert client.call("direct", {"to": "bo", "text": "otter one", "client_id": "o1"})["ok"]
            assert found(server.url, bo, "otter") == [("direct", "ana", "otter one")]  # indexed on first search
            assert client.call("direct", {"to": "bo", "text": "otter two", "client_id": "o2"})["ok"]
        assert found(server.url, ana, "otter") == [("direct", "bo", "otter two"), ("direct", "bo", "otter one")]
        assert found(server.url, cy, "otter") == []
        assert server.kill() == -9
        server.start()
        assert found(server.url, bo, "ott") == [("direct", "ana", "otter two"), ("direct", "ana", "otter one")]
        assert found(server.url, cy, "otter") == []
    finally:
        server.close()
