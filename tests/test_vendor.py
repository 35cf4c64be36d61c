"""tools/vendor.py: the pinned socket.io-client lands in static/vendor, checked against the lock file."""
import base64
import hashlib
import importlib.util
import io
import json
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def vendor(tmp_path, monkeypatch):
    """tools/vendor.py pointed at a scratch project with a fake lock file and a fake registry."""
    spec = importlib.util.spec_from_file_location("vendor_under_test", ROOT / "tools" / "vendor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:gz") as tar:
        for name, data in {"package/dist/socket.io.min.js": b"/* io */", "package/dist/socket.io.min.js.map": b"{}",
                           "package/LICENSE": b"MIT", "package/dist/other.js": b"x"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    module.fake_tarball = tarball.getvalue()
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(module.fake_tarball).digest()).decode()
    (tmp_path / "package-lock.json").write_text(json.dumps(
        {"packages": {"node_modules/socket.io-client": {"version": "9.9.9", "integrity": integrity}}}))
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "VENDOR", tmp_path / "static" / "vendor")
    monkeypatch.setattr(module, "STAMP", tmp_path / "static" / "vendor" / ".socket.io-client.lock")
    module.fetched = []

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def urlopen(url, timeout):
        module.fetched.append(url)
        return Response(module.fake_tarball)

    monkeypatch.setattr(module.urllib.request, "urlopen", urlopen)
    return module


def test_without_npm_fetches_the_pinned_tarball_and_extracts_the_dist_build(vendor, tmp_path):
    assert vendor.main(["--no-npm"]) == 0
    assert vendor.fetched == [f"{vendor.registry()}socket.io-client/-/socket.io-client-9.9.9.tgz"]
    assert (tmp_path / "static/vendor/socket.io.min.js").read_bytes() == b"/* io */"
    assert not (tmp_path / "static/vendor/other.js").exists()
    assert vendor.main(["--no-npm"]) == 0  # up to date: nothing fetched again
    assert len(vendor.fetched) == 1


def test_a_tarball_that_does_not_match_the_lock_file_is_refused(vendor, tmp_path):
    vendor.fake_tarball = vendor.fake_tarball + b"tampered"
    with pytest.raises(SystemExit, match="integrity mismatch"):
        vendor.main(["--no-npm"])
    assert not (tmp_path / "static/vendor/socket.io.min.js").exists()


def test_the_lock_file_pins_socket_io_client_exactly():
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    pinned = package["dependencies"]["socket.io-client"]
    assert pinned[0].isdigit(), "pin an exact version, not a range"
    entry = lock["packages"]["node_modules/socket.io-client"]
    assert entry["version"] == pinned and entry["integrity"].startswith("sha512-")
