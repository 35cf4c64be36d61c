"""Install pinned third-party browser code into static/vendor.

The pin is package-lock.json. With npm on the PATH, `npm ci` installs it into a
temporary folder (npm checks the integrity hash); without npm, the tarball is
fetched from the npm registry and its sha512 is checked against the lock file
before anything is extracted. Running the app never needs Node.js.

Usage: python tools/vendor.py [--force] [--no-npm]
"""
import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "static" / "vendor"
PACKAGE = "socket.io-client"
# Files copied from the package, as (path inside the package, name in static/vendor).
FILES = [
    ("dist/socket.io.min.js", "socket.io.min.js"),
    ("dist/socket.io.min.js.map", "socket.io.min.js.map"),
    ("LICENSE", "socket.io-client.LICENSE"),
]
STAMP = VENDOR / ".socket.io-client.lock"
DEFAULT_REGISTRY = "https://registry.npmjs.org/"


def locked_package():
    """Return (version, integrity) of the package pinned in package-lock.json."""
    lock = json.loads((ROOT / "package-lock.json").read_text())
    entry = lock["packages"][f"node_modules/{PACKAGE}"]
    return entry["version"], entry["integrity"]


def installed(stamp):
    """Tell whether static/vendor already holds exactly this pin."""
    if not STAMP.exists() or STAMP.read_text().strip() != stamp:
        return False
    return all((VENDOR / name).exists() for _, name in FILES)


def place(read):
    """Write each wanted file, read(path) -> bytes, atomically into static/vendor."""
    VENDOR.mkdir(parents=True, exist_ok=True)
    for src, name in FILES:
        tmp = VENDOR / f".{name}.tmp"
        tmp.write_bytes(read(src))
        os.replace(tmp, VENDOR / name)


def with_npm(npm):
    """Install with `npm ci` in a temporary folder and copy the dist build."""
    with tempfile.TemporaryDirectory(prefix="papo-vendor-") as tmp:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(ROOT / name, tmp)
        subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=tmp, check=True, stdout=subprocess.DEVNULL,
        )
        pkg = Path(tmp) / "node_modules" / PACKAGE
        place(lambda src: (pkg / src).read_bytes())


def registry():
    """Return the npm registry base URL (npm_config_registry overrides the default)."""
    url = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY")
    return (url or DEFAULT_REGISTRY).rstrip("/") + "/"


def check_integrity(data, integrity):
    """Raise unless data matches the lock file's sha512 integrity string."""
    algo, _, expected = integrity.partition("-")
    if algo != "sha512":
        raise SystemExit(f"vendor: unsupported integrity algorithm {algo!r}")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise SystemExit(f"vendor: integrity mismatch for {PACKAGE}: expected {integrity}, got sha512-{actual}")


def with_tarball(version, integrity):
    """Fetch the pinned tarball, verify it, and extract only the wanted files."""
    url = f"{registry()}{PACKAGE}/-/{PACKAGE}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as resp:
        data = resp.read()
    check_integrity(data, integrity)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        def read(src):
            member = tar.getmember(f"package/{src}")
            if not member.isfile():
                raise SystemExit(f"vendor: {src} is not a regular file in the tarball")
            return tar.extractfile(member).read()
        place(read)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="install even when up to date")
    parser.add_argument("--no-npm", action="store_true", help="fetch the tarball even if npm is present")
    args = parser.parse_args(argv)
    version, integrity = locked_package()
    stamp = f"{PACKAGE}@{version} {integrity}"
    if installed(stamp) and not args.force:
        print(f"vendor: {PACKAGE}@{version} up to date")
        return 0
    npm = None if args.no_npm or os.environ.get("PAPO_VENDOR_NO_NPM") else shutil.which("npm")
    if npm:
        with_npm(npm)
        how = "npm ci"
    else:
        with_tarball(version, integrity)
        how = "registry tarball, integrity checked"
    STAMP.write_text(stamp + "\n")
    print(f"vendor: installed {PACKAGE}@{version} into static/vendor ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
