"""bench/memory_server.py: Papo with its messages in memory, the persistence load's floor, as a real process."""
import time

import pytest

from tests.integration.client import ChatClient
from tests.servers import DEFAULT_MODE, ServerProcess, read_messages, register

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class MemoryServer(ServerProcess):
    def command(self):
        python, _app, *options = super().command()
        return [python, "bench/memory_server.py", *options]


def test_messages_are_answered_from_memory_as_the_reference_answers_them(tmp_path):
    with MemoryServer(DEFAULT_MODE, f"sqlite:///{tmp_path}/papo.db") as server:
        token = register(server.url, "ana")
        with ChatClient(server.url, token) as ana, ChatClient(server.url, register(server.url, "bo")) as bo:
            for client in (ana, bo):
                assert client.join("floor")["ok"] is True
            first = ana.send("floor", "  one  ", client_id="c1")
            again = ana.send("floor", "one again", client_id="c1")
            second = ana.send("floor", "two")
            refused = ana.send("floor", "")

            assert first["ok"] and first["message"]["seq"] == 1 and first["message"]["text"] == "one"
            assert again == first  # a repeated client_id gets its first message
            assert second["message"]["seq"] == 2 and second["message"]["user"] == "ana"
            assert refused["ok"] is False  # Papo's own checks still run
            assert bo.wait_until(lambda c: len(c.received.get("floor", [])) == 2)
            time.sleep(0.2)
            assert [m["seq"] for m in bo.received["floor"]] == [1, 2]
        assert read_messages(server.url, token, "floor") == []  # nothing was written
