#!/usr/bin/env python3
"""The disk neighbour: another process writing and fsyncing a file on the database's disk, bounded.

    python bench/disk.py --file /tmp/x --seconds 40 [--block-kb 256] [--sync-every 4] [--mb-per-s 64] [--max-mb 64]

It writes `block-kb` blocks at `mb-per-s` at most, fsyncs every `sync-every` blocks, starts the file over at `max-mb`
(so it never holds more), stops after `seconds` or on SIGTERM, removes its file and prints one
JSON line: MB written, fsyncs and their p50 / max. An ordinary neighbour on a shared disk (a log
shipper, a backup, another service's database): bench/run.py starts it by PID beside a server
whose database is on the same disk, and stops it by PID.

`filesystem(path)` tells where a path lives (the mount, its type): the report says whether the
database was on a real disk or on tmpfs.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def filesystem(path):
    """{mount, type, device} of the mount holding `path`, from /proc/mounts."""
    path = os.path.realpath(path)
    best = None
    try:
        with open("/proc/mounts") as handle:
            for line in handle:
                device, mount, kind = line.split()[:3]
                inside = path == mount or path.startswith(mount.rstrip("/") + "/")
                if inside and (best is None or len(mount) > len(best["mount"])):
                    best = {"mount": mount, "type": kind, "device": device}
    except OSError:
        return None
    return best


class Neighbour:
    """This script as a child process for the length of a `with` block, stopped by its PID at the end;
    `result` is what it printed (None if it printed nothing)."""

    def __init__(self, workdir, seconds, options):
        self.file = Path(workdir) / "neighbour.bin"
        self.argv = [sys.executable, HERE / "disk.py", "--file", self.file, "--seconds", seconds]
        for key, value in options.items():
            self.argv += [f"--{key}", value]
        self.proc = None
        self.result = None

    def __enter__(self):
        from rig import CHILDREN
        self.proc = CHILDREN.start(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *_exc):
        from rig import CHILDREN
        assert self.proc is not None, "entered"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # by its PID; it stops writing, removes its file, reports
        try:
            out, _ = self.proc.communicate(timeout=15)
            self.result = json.loads(out.decode().strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            self.result = None
        CHILDREN.stop(self.proc)
        self.file.unlink(missing_ok=True)
        return False


def neighbour(file, seconds, block_kb=256, sync_every=4, max_mb=64, mb_per_s=64.0):
    """Write and fsync until `seconds` pass or SIGTERM: {mb_written, fsyncs, fsync_ms_p50, fsync_ms_max}."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    block = os.urandom(block_kb * 1024)
    limit = max_mb * 1024 * 1024
    syncs, written, blocks = [], 0, 0
    start = time.monotonic()
    end = start + seconds
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while not stop and time.monotonic() < end:
            if os.lseek(fd, 0, os.SEEK_CUR) + len(block) > limit:
                os.lseek(fd, 0, os.SEEK_SET)
            written += os.write(fd, block)
            blocks += 1
            if blocks % sync_every == 0:
                t = time.monotonic()
                os.fsync(fd)
                syncs.append((time.monotonic() - t) * 1000)
            ahead = start + written / (mb_per_s * 2 ** 20) - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    finally:
        os.close(fd)
        Path(file).unlink(missing_ok=True)
    syncs.sort()
    return {"mb_written": round(written / 2 ** 20, 1), "fsyncs": len(syncs),
            "fsync_ms_p50": round(syncs[len(syncs) // 2], 2) if syncs else None,
            "fsync_ms_max": round(syncs[-1], 2) if syncs else None, "filesystem": filesystem(Path(file).parent)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", required=True)
    parser.add_argument("--seconds", type=float, required=True, help="at most this long")
    parser.add_argument("--block-kb", type=int, default=256)
    parser.add_argument("--sync-every", type=int, default=4, help="fsync after this many blocks")
    parser.add_argument("--mb-per-s", type=float, default=64.0, help="write at most this fast")
    parser.add_argument("--max-mb", type=int, default=64, help="the file never grows past this")
    args = parser.parse_args(argv)
    print(json.dumps(neighbour(args.file, min(args.seconds, 3600), args.block_kb, args.sync_every, args.max_mb,
                                args.mb_per_s)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
