"""tools/vendor.py: the pinned socket.io-client lands in static/vendor, checked against the lock file."""
import base64
import hashlib
import importlib.util
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_vendor(name: str) -> Any:
    """Load a fresh copy of tools/vendor.py as a module of its own."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "vendor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def vendor(tmp_path, monkeypatch):
    """tools/vendor.py pointed at a scratch project with a fake lock file and a fake registry."""
    module = load_vendor("vendor_under_test")
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
    monkeypatch.setattr(module, "PACKAGES", {"socket.io-client": module.PACKAGES["socket.io-client"]})
    monkeypatch.setenv("npm_config_registry", "https://npm.registry.invalid/")
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


def test_every_package_in_the_table_is_fetched_checked_and_stamped(vendor, tmp_path, monkeypatch):
    tarballs = {}
    for package, files in {"socket.io-client": {"dist/a.js": b"a"}, "@scope/charts": {"dist/c.js": b"c"}}.items():
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w:gz") as tar:
            for name, content in files.items():
                info = tarfile.TarInfo(f"package/{name}")
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        tarballs[package] = data.getvalue()
    monkeypatch.setattr(vendor, "PACKAGES", {"socket.io-client": [("dist/a.js", "a.js")],
                                             "@scope/charts": [("dist/c.js", "c.js")]})
    (tmp_path / "package-lock.json").write_text(json.dumps({"packages": {
        f"node_modules/{package}": {"version": "1.0.0", "integrity": "sha512-" + base64.b64encode(
            hashlib.sha512(data).digest()).decode()} for package, data in tarballs.items()}}))
    served = {f"{vendor.registry()}socket.io-client/-/socket.io-client-1.0.0.tgz": tarballs["socket.io-client"],
              f"{vendor.registry()}@scope/charts/-/charts-1.0.0.tgz": tarballs["@scope/charts"]}
    monkeypatch.setattr(vendor.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(served[url]))
    assert vendor.main(["--no-npm"]) == 0
    assert (tmp_path / "static/vendor/a.js").read_bytes() == b"a"
    assert (tmp_path / "static/vendor/c.js").read_bytes() == b"c"
    assert vendor.STAMP.read_text().splitlines()[1].startswith("@scope/charts@1.0.0 sha512-")


def test_every_vendored_package_is_pinned_exactly():
    module = load_vendor("vendor_table")
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    for name in module.PACKAGES:
        pinned = package["dependencies"][name]
        assert pinned[0].isdigit(), f"pin {name} to an exact version, not a range"
        assert lock["packages"][f"node_modules/{name}"]["version"] == pinned
