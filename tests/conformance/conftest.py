"""A real server per async mode with the test-only echo endpoint turned on."""
import pytest

from tests.servers import MODES, ServerProcess

from .cases import LIMIT

ECHO_ENV = {"TEST_WEBSOCKET_ECHO": "1", "MAX_FRAME_BYTES": str(LIMIT)}


@pytest.fixture(scope="module", params=MODES)
def echo_server(request, tmp_path_factory):
    db = tmp_path_factory.mktemp(f"conformance-{request.param}") / "papo.db"
    with ServerProcess(request.param, f"sqlite:///{db}", env=ECHO_ENV) as server:
        yield server
