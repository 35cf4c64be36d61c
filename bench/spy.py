"""Where a server's time goes: py-spy sampling a process, and a summary of its collapsed stacks.

`Spy` records one process (`py-spy record --nonblocking`, raw collapsed stacks or a flame graph);
`summarize` turns the collapsed stacks into the shares of samples by function, for the report.
py-spy leaves out threads it sees idle, but some waits (epoll, a lock with a timeout) look busy to it.
"""
import contextlib
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from rig import CHILDREN, ROOT, tail

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
PACKAGES = ("chat/", "site-packages/", "lib/python")


def py_spy():
    """The py-spy program of the project's venv (requirements-dev.txt), or on PATH; None without it."""
    return shutil.which("py-spy", path=str(ROOT / ".venv" / "bin")) or shutil.which("py-spy")


class Spy:
    """py-spy recording one process until stopped (SIGINT: it writes what it has) or `seconds` pass."""

    def __init__(self, pid, output, *, seconds, rate=100, flamegraph=False, err=None):
        self.pid = pid
        self.output = Path(output)
        self.err = Path(err) if err else self.output.with_suffix(".err")
        self.argv = [py_spy(), "record", "--pid", pid, "--nonblocking", "--rate", rate, "--format",
                     "flamegraph" if flamegraph else "raw", "--output", self.output, "--duration", int(seconds)]
        self.proc = None

    def start(self):
        with open(self.err, "wb") as err:
            self.proc = CHILDREN.start(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                CHILDREN.stop(proc)
        if self.proc is not None:
            CHILDREN.procs.pop(self.proc.pid, None)
        return self.output if self.output.exists() else None

    def error(self):
        return tail(self.err)


def short_frame(frame):
    """`func (path:line)` -> `func (chat/store.py)`: the file from the package root, no line."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    for marker in PACKAGES:
        at = path.rfind(marker)
        if at >= 0:
            path = path[at:] if marker == "chat/" else path[at + len(marker):]
            if marker == "lib/python":  # the standard library: lib/python3.11/socket.py
                path = "stdlib/" + path.partition("/")[2]
            break
    return f"{match.group('func')} ({path})"


def summarize(collapsed, top=10):
    """Shares of samples from py-spy's collapsed stacks: the leaf functions (self time), Papo's own
    functions (time within them and what they call), and the modules the leaves are in."""
    total = 0
    leaves: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    modules: dict[str, int] = {}
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [short_frame(f) for f in stack.split(";")[1:]]  # the first is the thread
        if not frames:
            continue
        leaves[frames[-1]] = leaves.get(frames[-1], 0) + n
        module = frames[-1].rpartition("(")[2].rstrip(")").split("/")[0] or "?"
        modules[module] = modules.get(module, 0) + n
        for frame in {f for f in frames if "(chat/" in f}:
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return None

    def shares(counts):
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
        return [[name, round(n / total, 4)] for name, n in ranked]

    return {"samples": total, "self": shares(leaves), "papo_inclusive": shares(inclusive), "modules": shares(modules)}
