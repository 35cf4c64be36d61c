"""Install pinned third-party browser code into static/vendor.

The pins are package-lock.json; PACKAGES below says which files each package
contributes. With npm on the PATH, `npm ci` installs them into a temporary folder
(npm checks the integrity hashes); without npm, each tarball is fetched from the
npm registry and its sha512 is checked against the lock file before anything is
extracted. Running the app never needs Node.js.

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
# Each pinned package and the files it contributes, as (path inside the package, name in static/vendor).
PACKAGES = {
    # axe-core is for the browser suite only (tests/browser/test_axe.py injects it); no page loads it.
    "axe-core": [
        ("axe.min.js", "axe.min.js"),
        ("LICENSE", "axe-core.LICENSE"),
    ],
    "socket.io-client": [
        ("dist/socket.io.min.js", "socket.io.min.js"),
        ("dist/socket.io.min.js.map", "socket.io.min.js.map"),
        ("LICENSE", "socket.io-client.LICENSE"),
    ],
    "uplot": [
        ("dist/uPlot.iife.min.js", "uPlot.iife.min.js"),
        ("dist/uPlot.min.css", "uPlot.min.css"),
        ("LICENSE", "uplot.LICENSE"),
    ],
}
STAMP = VENDOR / ".socket.io-client.lock"  # the pins installed, one line per package


def locked_packages():
    """Return {package: (version, integrity)} of every vendored package, as package-lock.json pins it."""
    lock = json.loads((ROOT / "package-lock.json").read_text())
    pins = {}
    for package in PACKAGES:
        entry = lock["packages"].get(f"node_modules/{package}")
        if entry is None:
            raise SystemExit(f"vendor: {package} is not in package-lock.json; run `npm install --package-lock-only`")
        pins[package] = entry["version"], entry["integrity"]
    return pins


def installed(stamp):
    """Tell whether static/vendor already holds exactly these pins."""
    if not STAMP.exists() or STAMP.read_text().strip() != stamp:
        return False
    return all((VENDOR / name).exists() for files in PACKAGES.values() for _, name in files)


def place(package, read):
    """Write each file the package contributes, read(path) -> bytes, atomically into static/vendor."""
    VENDOR.mkdir(parents=True, exist_ok=True)
    for src, name in PACKAGES[package]:
        tmp = VENDOR / f".{name}.tmp"
        tmp.write_bytes(read(src))
        os.replace(tmp, VENDOR / name)


def with_npm(npm):
    """Install with `npm ci` in a temporary folder and copy each package's files."""
    with tempfile.TemporaryDirectory(prefix="papo-vendor-") as tmp:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(ROOT / name, tmp)
        subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=tmp, check=True, stdout=subprocess.DEVNULL,
        )
        for package in PACKAGES:
            pkg = Path(tmp) / "node_modules" / package
            place(package, lambda src, pkg=pkg: (pkg / src).read_bytes())


def registry():
    """Return the npm registry base URL, configured as npm itself reads it: environment, then .npmrc."""
    url = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY")  # noqa: SIM112 (npm's own name)
    for npmrc in (ROOT / ".npmrc", Path.home() / ".npmrc"):
        if url:
            break
        if npmrc.is_file():
            for line in npmrc.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "registry" and value.strip():
                    url = value.strip()
    if not url:
        raise SystemExit("vendor: npm is not installed and no npm registry is configured; install npm, "
                         "or set npm_config_registry (or `registry=` in ~/.npmrc) to your npm registry's URL")
    return url.rstrip("/") + "/"


def check_integrity(data, integrity, package):
    """Raise unless data matches the lock file's sha512 integrity string."""
    algo, _, expected = integrity.partition("-")
    if algo != "sha512":
        raise SystemExit(f"vendor: unsupported integrity algorithm {algo!r}")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise SystemExit(f"vendor: integrity mismatch for {package}: expected {integrity}, got sha512-{actual}")


def with_tarball(package, version, integrity):
    """Fetch the pinned tarball, verify it, and extract only the wanted files."""
    url = f"{registry()}{package}/-/{package.rsplit('/', 1)[-1]}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as resp:
        data = resp.read()
    check_integrity(data, integrity, package)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        def read(src):
            member = tar.getmember(f"package/{src}")
            if not member.isfile():
                raise SystemExit(f"vendor: {src} is not a regular file in the tarball")
            handle = tar.extractfile(member)
            if handle is None:
                raise SystemExit(f"vendor: {src} cannot be read from the tarball")
            return handle.read()
        place(package, read)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="install even when up to date")
    parser.add_argument("--no-npm", action="store_true", help="fetch the tarball even if npm is present")
    args = parser.parse_args(argv)
    pins = locked_packages()
    names = ", ".join(f"{package}@{version}" for package, (version, _) in pins.items())
    stamp = "\n".join(f"{package}@{version} {integrity}" for package, (version, integrity) in pins.items())
    if installed(stamp) and not args.force:
        print(f"vendor: {names} up to date")
        return 0
    npm = None if args.no_npm or os.environ.get("PAPO_VENDOR_NO_NPM") else shutil.which("npm")
    if npm:
        with_npm(npm)
        how = "npm ci"
    else:
        for package, (version, integrity) in pins.items():
            with_tarball(package, version, integrity)
        how = "registry tarballs, integrity checked"
    STAMP.write_text(stamp + "\n")
    print(f"vendor: installed {names} into static/vendor ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
