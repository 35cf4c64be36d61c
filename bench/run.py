#!/usr/bin/env python3
"""Papo's benchmark driver: `make bench` (at most 30 minutes) and `make bench-quick` (at most 4).

    python bench/run.py [--quick] [--only SUITES] [--sizes N,..] [--ways W,..] [--budget S] [--no-report]
                        [--save-baseline] [-v]
    python bench/run.py --profile MODE WORKLOAD [--seconds N]

The suites (--only, comma-separated; default all): transport, servers, threading (this module),
latency-disk, storm, scaling, profile (bench/suites.py). bench/README.md describes each.

It starts every server itself (Papo per ASYNC_MODE, and the Node reference in bench/reference/),
drives them with the Node load generator (bench/loadgen/, one JSON line per invocation), and
writes every invocation's result, with the machine's load around it, to
bench/results/bench-<date>-<mode>.json (and bench/results/latest.json). bench/report.py turns
that file into docs/benchmarks.md and docs/img/bench_*.png; it runs at the end unless
--no-report. The first full run's results, without the CDF points, are kept as
bench/baseline.json (or again with --save-baseline), for the report's "before and after".

Everything binds 127.0.0.1; every invocation is bounded (--max-seconds, and a kill by PID past
it); every process started is stopped by its PID, also on Ctrl-C and on errors.

--profile MODE WORKLOAD records a py-spy flame graph (SVG, --nonblocking) of a Papo server in
MODE (eventlet, gevent, threading) under WORKLOAD (fanout, latency, persist, idle, capacity,
storm: its connect phase, or a transport way: ws, sio-polling, short-poll, long-poll, sse) into
bench/results/.

Standard library only: it runs under the project's venv so that the report can use matplotlib.
"""
import argparse
import atexit
import json
import resource
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import rig
import suites
from figures import DEFAULT_MODE, MEMORY, descriptors, kept_up
from rig import (
    BASELINE,
    BENCH,
    CHILDREN,
    RESULTS,
    ROOT,
    SCHEMA,
    T0,
    Runner,
    Server,
    ServerError,
    arg_list,
    git_commit,
    headline,
    loadavg,
    log,
    machine_info,
    on_signal,
    papo_settings,
    raise_open_files,
    settings_check,
    tail,
    versions,
)
from spy import Spy, py_spy

# ----------------------------------------------------------------------------------- the plans
# Durations are the measurement windows of the load generator (after its warm-up); sizes and
# repeats are cut down in the quick plan. `budget` is the driver's own limit in seconds: a step
# whose estimate does not fit in what is left is skipped and listed in the report.
FULL = {
    "name": "full",
    "papo": DEFAULT_MODE,  # the mode of the suites that measure one: the transport study, storage, scale-out
    "budget": 1800,
    "user_pool": 50,  # registered once per run: persist needs 50 distinct senders
    # seconds per phase on a quiet machine (per round for the servers): the budget is shared out so
    "shares": {"transport": 560, "sweep": 60, "reference": [38, 28], "eventlet": [56, 44], "gevent": [56, 44],
               "gevent-memory": [9], "threading": 30, "latency-disk": 150, "storm": 75, "scaling": 110,
               "profile": 70},
    "rounds": 3,
    # a kind + figures.MEMORY: Papo with its messages in memory (bench/memory_server.py), under the persistence
    # load only: what the stack costs a message before any storage
    "servers": ["reference", "eventlet", "gevent", "gevent-memory"],
    "threading": True,
    "threading_workloads": None,
    # the scale study: every way at each size until the first it does not keep up at; every client
    # receives, the first `max_senders` send `rate` messages/s each: from 200 clients on 100 messages/s in,
    # 1,000 deliveries/s, within every way's sending rate (the sweep finds where that ends; Papo answers
    # HTTP POSTs far slower than Socket.IO messages), so that what grows with each size is the clients;
    # from `fresh_from` clients on a fresh server per way and size (memory per idle client, no backlog
    # left by the way before); from `big_from` on, shorter windows (one repeat: the time goes to connecting)
    "transport": {"sizes": [10, 100, 1000, 3000, 10000], "rate": 0.5, "max_senders": 200, "duration": 3,
                  "warmup": 0.8, "fresh_from": 1000, "big_from": 3000, "big_duration": 2, "big_warmup": 0.5,
                  "sweep_clients": 100, "sweep_rates": [3, 10, 30], "sweep_duration": 2},
    "fanout": {"clients": 200, "senders": 5, "inflight": 50, "duration": 3, "warmup": 0.5},
    "latency": {"clients": 100, "rooms": 10, "rate": 20, "duration": 3, "warmup": 1, "drain": 2},
    "persist": {"senders": 50, "duration": 3, "warmup": 0.5},
    "capacity": {"step": 1000, "max-clients": 10000, "samples": 20, "concurrent": 4, "limit-ms": 250,
                 "settle": 0.3},  # steps of 1,000: Papo now holds twice the reference, and each step costs time
    # idle sizes measured in round 1; later rounds repeat only the largest (the goals' 10k)
    "idle_first": [10000, 1000, 5000],  # the goals' size first: a busy machine cuts the others
    "idle_repeat": [10000],
    "threading_idle": [1000],
    "threading_capacity_max": 1500,
    # the storage and scale-out suites (bench/suites.py); seconds per round in "shares" below
    "latency_disk": {"rounds": 3, "servers": ["reference", DEFAULT_MODE],
                     "load": {"clients": 100, "rooms": 10, "rate": 20, "duration": 30, "warmup": 2, "drain": 3},
                     "neighbour": {"mb-per-s": 64, "block-kb": 256, "sync-every": 4, "max-mb": 64}},
    # drain_seconds: Papo's DRAIN_SECONDS, its default for one process (chat/config.py)
    "storm": {"rounds": 3, "clients": 10000, "rooms": 100, "rate": 1, "before": 3, "recover-seconds": 90,
              "ways": ["sigterm", "kill9"], "drain_seconds": 0.0, "drain_limit": 30, "max_seconds": 240},
    "scaling": {"rounds": 3,
                "fanout": {"clients": 200, "senders": 5, "inflight": 50, "duration": 3, "warmup": 1},
                "latency": {"clients": 100, "rooms": 10, "rate": 20, "duration": 4, "warmup": 1, "drain": 2},
                # (server, processes, Redis): alternated within each round
                "configs": [["reference", 1, True], [DEFAULT_MODE, 1, False], [DEFAULT_MODE, 1, True],
                            ["reference", 2, True], [DEFAULT_MODE, 2, True], [DEFAULT_MODE, 3, True]]},
    "profile": {"seconds": 10, "storm": True},
}
QUICK = {
    "name": "quick",
    "papo": DEFAULT_MODE,
    "budget": 240,
    "user_pool": 20,
    "shares": {"transport": 40, "sweep": 14, "reference": [15], "eventlet": [18], "gevent": [17],
               "gevent-memory": [5], "threading": 9, "latency-disk": 24, "storm": 25, "scaling": 40, "profile": 12},
    "rounds": 1,
    "servers": ["reference", "eventlet", "gevent", "gevent-memory"],
    "threading": True,
    "threading_workloads": ["fanout", "latency"],
    "transport": {"sizes": [10, 100], "rate": 0.5, "max_senders": 200, "duration": 1.5, "warmup": 0.5,
                  "fresh_from": 1000, "big_from": 3000, "big_duration": 1.5, "big_warmup": 0.5,
                  "sweep_clients": 100, "sweep_rates": [5], "sweep_duration": 1.5},
    "fanout": {"clients": 200, "senders": 5, "inflight": 50, "duration": 1.5, "warmup": 0.5},
    "latency": {"clients": 100, "rooms": 10, "rate": 20, "duration": 1.5, "warmup": 0.5, "drain": 1.5},
    "persist": {"senders": 20, "duration": 1.5, "warmup": 0.5},
    "capacity": {"step": 500, "max-clients": 1000, "samples": 12, "concurrent": 4, "limit-ms": 250,
                 "settle": 0.3},
    "idle_first": [1000],
    "idle_repeat": [],
    "threading_idle": [],
    "threading_capacity_max": 0,
    "latency_disk": {"rounds": 1, "servers": ["reference", DEFAULT_MODE],
                     "load": {"clients": 100, "rooms": 10, "rate": 20, "duration": 3, "warmup": 1, "drain": 2},
                     "neighbour": {"mb-per-s": 64, "block-kb": 256, "sync-every": 4, "max-mb": 64}},
    "storm": {"rounds": 1, "clients": 500, "rooms": 10, "rate": 1, "before": 1, "recover-seconds": 40,
              "ways": ["sigterm", "kill9"], "drain_seconds": 0.0, "drain_limit": 15, "max_seconds": 90},
    "scaling": {"rounds": 1,
                "fanout": {"clients": 200, "senders": 5, "inflight": 50, "duration": 1.5, "warmup": 0.5},
                "latency": {"clients": 100, "rooms": 10, "rate": 20, "duration": 1.5, "warmup": 0.5, "drain": 1.5},
                "configs": [["reference", 1, True], [DEFAULT_MODE, 1, False], [DEFAULT_MODE, 1, True],
                            ["reference", 2, True], [DEFAULT_MODE, 2, True]]},
    "profile": {"seconds": 3, "storm": False},
}
# Cheapest first: at a big size the ways that hold it are measured before the ones that fall behind
# (a way that falls behind takes far longer than its estimate, and would leave no time for the others).
WAYS = [  # (name in the report, loadgen --way, extra arguments)
    ("ws", "ws", []),
    ("sse", "sse", []),
    ("sio-polling", "sio-polling", []),
    ("long-poll", "long-poll", ["--poll-timeout", "25"]),
    ("short-poll 1s", "short-poll", ["--interval", "1000"]),
    ("short-poll 250ms", "short-poll", ["--interval", "250"]),
]

# ------------------------------------------------------------------------------ the steps
class Budget:
    """The run's time: a total, shared out between phases in proportion to their planned shares.

    Entering a phase gives it (time left) x (its share / the shares of the phases still to come):
    a phase that ran fast leaves more to the others, one that ran slow (a busy machine) takes
    from each of them, so that every server still gets measured. A step runs only if its estimate
    fits both in its phase and in the total less the reserve kept for the report.
    """

    RESERVE = 6

    def __init__(self, seconds, shares=()):
        self.seconds = seconds
        self.shares = dict(shares)
        self.phase_end = None

    def left(self):
        return self.seconds - (time.monotonic() - T0)

    def fits(self, estimate):
        if self.left() < estimate + self.RESERVE:
            return False
        # within a phase, a step may run over a little: the phases after it share the difference
        return self.phase_end is None or self.phase_end - time.monotonic() >= 0.7 * estimate

    def enter(self, name):
        share = self.shares.pop(name, 0)
        rest = share + sum(self.shares.values())
        self.phase_end = time.monotonic() + max(0.0, self.left() - self.RESERVE) * (share / rest if rest else 1)

    def leave(self):
        self.phase_end = None


SUITES = {  # name for --only: what it measures
    "transport": f"the transport study and its rate sweep (Papo {DEFAULT_MODE})",
    "servers": "fanout, latency, persist, capacity and idle per server, in rounds",
    "threading": "the development server, once",
    "latency-disk": "the fixed latency load, 30 s windows, quiet and beside a disk neighbour",
    "storm": "10,000 clients; Papo restarted under them (SIGTERM, kill -9)",
    "scaling": "fan-out and latency over 1-3 processes with Redis and PostgreSQL",
    "profile": "py-spy over Papo under the disk neighbour, the persistence load and a storm",
}


def shares(plan, only):
    """The phases in order with their planned seconds (what they took on a quiet machine)."""
    sh = plan["shares"]
    out = []
    if "transport" in only:
        out += [("transport", sh["transport"]), ("sweep", sh["sweep"])]
    for round_no in range(1, plan["rounds"] + 1):
        for kind in plan["servers"] if "servers" in only else []:
            per = sh[kind]
            out.append((f"{kind} {round_no}", per[min(round_no, len(per)) - 1]))
    if plan["threading"] and "threading" in only:
        out.append(("threading", sh["threading"]))
    for suite, key in (("latency-disk", "latency_disk"), ("storm", "storm"), ("scaling", "scaling")):
        if suite in only:
            out += [(f"{suite} {n}", sh[suite]) for n in range(1, plan[key]["rounds"] + 1)]
    if "profile" in only:
        out.append(("profile", sh["profile"]))
    return out


def est_idle(runner, kind, clients):
    default = 3000 if kind == "reference" else 450
    rate = runner.connect_rate.get(kind, default)
    return 3 + clients / rate + 4


def drain(way_args):
    """Seconds to wait after the window for its last messages: past the keep-up rule's p99 limit
    (1 s; short polling two intervals + 1 s) a late message no longer changes the verdict."""
    if "--interval" in way_args:
        return round(2 * int(way_args[way_args.index("--interval") + 1]) / 1000 + 1, 2)
    return 1.5


class Bench:
    def __init__(self, plan, runner, budget, *, sizes=None, ways=None):
        self.plan = plan
        self.runner = runner
        self.budget = budget
        self.sizes = sizes  # the transport study's sizes and ways to run (--sizes, --ways); None: all
        self.ways = ways

    def phase(self, name, t):
        self.runner.phases[name] = round(self.runner.phases.get(name, 0) + time.monotonic() - t, 1)

    def server(self, kind, label="", env=None):
        server = Server(kind, self.runner.workdir, label, env=env)
        log(f"starting {kind}")
        server.start()
        log(f"{kind} ready on {server.url} in {server.start_s}s (pid {server.pid})")
        return server

    # the user pool, once per run ------------------------------------------------------------
    def register(self, server):
        t = time.monotonic()
        pool = self.plan["user_pool"]
        run = self.runner.loadgen(server, "idle", ["--clients", pool, "--users", pool, "--broadcasts", 0,
                                                    "--hold", 0], section="setup", label="register user pool",
                                  max_seconds=180)
        self.runner.phases["register_users_s"] = round(time.monotonic() - t, 1)
        if run.get("error"):
            raise ServerError(f"registering the user pool failed: {run['error']}")

    # (a) ----------------------------------------------------------------------------------------
    def transport(self, server):
        """The ways at growing sizes, every way at a size before the next size; a way leaves at the first
        size it does not keep up at (its limit), or that does not fit the open files or the time.

        The sizes from `fresh_from` run on fresh servers: Papo serves one SQLite file from one process, so
        `server` is stopped first, and the server returned (for the sweep) is a new one then."""
        tp = self.plan["transport"]
        t = time.monotonic()
        alive = [w for w in WAYS if self.ways is None or w[0] in self.ways]
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        for clients in tp["sizes"]:
            if self.sizes is not None and clients not in self.sizes:
                continue
            big = clients >= tp["big_from"]
            duration, warmup = (tp["big_duration"], tp["big_warmup"]) if big else (tp["duration"], tp["warmup"])
            senders = min(clients, tp["max_senders"])
            fresh = clients >= tp["fresh_from"]
            if fresh and alive and server.alive():
                server.stop()
            for name, way, extra in list(alive):
                need = descriptors(way, clients, senders)
                if need > nofile:
                    self.runner.skip(f"transport {name} at {clients} clients",
                                     f"{need:,} open files needed, the limit is {nofile:,}")
                    alive.remove((name, way, extra))
                    continue
                rate = self.runner.connect_rate.get(f"transport {way}", 400)
                est = (duration + warmup + 2 + clients / rate + (drain(extra) if clients >= 1000 else 0)
                       + (4 if fresh else 0))
                if not self.budget.fits(est):
                    self.runner.skip(f"transport {name} at {clients} clients", "time budget")
                    alive.remove((name, way, extra))
                    continue
                args = ["--way", way, "--clients", clients, "--senders", senders, "--rate", tp["rate"],
                        "--duration", duration, "--warmup", warmup, "--drain", drain(extra)] + extra
                extra_fields = {"way": name, "clients": clients, "rate": tp["rate"], "senders": senders,
                                "fresh": fresh}
                run = self.transport_run(server if not fresh else None, args, f"{name} x{clients}",
                                         extra_fields, max_seconds=int(60 + 3 * clients / rate),
                                         what=f"transport {name} at {clients} clients")
                result = run.get("result") or {}
                if result.get("connect_s") and clients >= 1000:
                    self.runner.connect_rate[f"transport {way}"] = clients / max(result["connect_s"], 0.1)
                if not kept_up(result if not run.get("error") else None):
                    alive.remove((name, way, extra))
        self.phase("transport_sizes_s", t)
        return server if server.alive() else self.server(self.plan["papo"])

    def transport_run(self, server, args, label, extra, max_seconds, what):
        """One transport invocation, on `server` or, when None, on a fresh Papo server stopped after it."""
        own = None
        if server is None:
            try:
                own = server = self.server(self.plan["papo"])
            except ServerError as error:
                self.runner.skip(what, str(error))
                return {"error": str(error)}
        try:
            return self.runner.loadgen(server, "transport", args, section="transport", label=label,
                                       max_seconds=max_seconds, extra=extra)
        finally:
            if own is not None:
                own.stop(grace=1.5)  # thousands of connections make a graceful exit slow; nothing in flight

    def sweep(self, server):
        """Raise the per-client rate step by step, every way at a step before the next step, so that a
        short budget cuts the highest rates rather than the last ways; a way leaves at its first failure."""
        tp = self.plan["transport"]
        t = time.monotonic()
        clients = tp["sweep_clients"]
        alive = []
        for name, way, extra in WAYS:
            if self.ways is not None and name not in self.ways:
                continue
            base = [r for r in self.runner.runs if r["section"] == "transport" and r.get("way") == name
                    and (r.get("clients") or 0) <= clients]
            if all(kept_up(r.get("result") if not r.get("error") else None) for r in base):
                alive.append((name, way, extra))  # fell behind at the base rate already: nothing to raise
        for rate in tp["sweep_rates"]:
            for name, way, extra in list(alive):
                est = 2 + tp["sweep_duration"] + tp["warmup"]
                if not self.budget.fits(est):
                    self.runner.skip(f"rate sweep {name} at {rate}/s per client", "time budget")
                    continue
                run = self.runner.loadgen(server, "transport", [
                    "--way", way, "--clients", clients, "--rate", rate, "--duration", tp["sweep_duration"],
                    "--warmup", tp["warmup"], "--drain", drain(extra)] + extra, section="sweep",
                    label=f"{name} x{clients} @{rate}/s", max_seconds=60,
                    extra={"way": name, "clients": clients, "rate": rate})
                if not kept_up(run.get("result")):
                    alive.remove((name, way, extra))
        self.phase("transport_sweep_s", t)

    # (b), (c) -------------------------------------------------------------------------------------
    def workloads(self, server, round_no, *, capacity_max=None, only=None):
        p = self.plan
        steps = [
            ("fanout", arg_list(p["fanout"]), p["fanout"]["duration"] + p["fanout"]["warmup"] + 3),
            ("latency", arg_list(p["latency"]), p["latency"]["duration"] + p["latency"]["warmup"] + 3),
        ]
        cap = dict(p["capacity"])
        if capacity_max is not None:
            cap["max-clients"] = capacity_max
        cap_seconds = 60 if p["name"] == "full" else 25
        if cap["max-clients"] > 0:
            steps.append(("capacity", arg_list(cap), 9 if p["name"] == "full" else 4))
        steps.append(("persist", arg_list(p["persist"]), p["persist"]["duration"] + p["persist"]["warmup"] + 2))
        for workload, args, est in steps:
            if only is not None and workload not in only:
                continue
            if not self.budget.fits(est):
                self.runner.skip(f"{server.kind} round {round_no} {workload}", "time budget")
                continue
            max_seconds = cap_seconds if workload == "capacity" else 60
            self.runner.loadgen(server, workload, args, section="server", round_no=round_no, max_seconds=max_seconds)

    def idle(self, kind, sizes, round_no):
        for clients in sizes:
            est = est_idle(self.runner, kind, clients)
            if not self.budget.fits(est):
                self.runner.skip(f"{kind} round {round_no} idle {clients}", "time budget")
                continue
            server = self.server(kind)  # a fresh server per size: its memory before is the bare process's
            try:
                self.runner.loadgen(server, "idle", ["--clients", clients, "--broadcasts", 3, "--hold", 1],
                                    section="server", round_no=round_no, label=f"idle {clients}",
                                    max_seconds=max(60, int(est * 3)), extra={"clients": clients})
            finally:
                server.stop(grace=1.5)  # 10k connections make a graceful exit slow; nothing is being written

    def idle_sizes(self, kind, round_no):
        sizes = self.plan["idle_first"] if round_no == 1 else self.plan["idle_repeat"]
        # one descriptor per WebSocket: a size past the open-files limit would measure the limit
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        fits = [n for n in sizes if n + 200 <= limit]
        for n in sizes:
            if n not in fits and round_no == 1:
                self.runner.notes.append(f"{kind} idle at {n}: not run, {n} descriptors pass the open-files "
                                         f"limit of {limit}")
        return fits

    def rounds(self):
        p = self.plan
        for round_no in range(1, p["rounds"] + 1):
            for kind in p["servers"]:
                t = time.monotonic()
                self.budget.enter(f"{kind} {round_no}")
                try:
                    if not self.budget.fits(10):
                        self.runner.skip(f"{kind} round {round_no}", "time budget")
                        continue
                    try:
                        server = self.server(kind)
                    except ServerError as error:
                        self.runner.skip(f"{kind} round {round_no}", str(error))
                        continue
                    try:
                        if kind.endswith(MEMORY):
                            self.workloads(server, round_no, only={"persist"})
                        else:
                            self.workloads(server, round_no)
                            server.stop()
                            self.idle(kind, self.idle_sizes(kind, round_no), round_no)
                    except ServerError as error:
                        self.runner.skip(f"the rest of {kind} round {round_no}", str(error))
                    finally:
                        server.stop()
                finally:
                    self.budget.leave()
                    self.phase(f"{kind}_s", t)

    def threading_once(self):
        p = self.plan
        t = time.monotonic()
        if not self.budget.fits(10):
            self.runner.skip("threading (development server)", "time budget")
            return
        try:
            server = self.server("threading")
        except ServerError as error:
            self.runner.skip("threading (development server)", str(error))
            return
        try:
            self.workloads(server, 1, capacity_max=p["threading_capacity_max"], only=p.get("threading_workloads"))
            server.stop()
            self.idle("threading", p["threading_idle"], 1)
        except ServerError as error:
            self.runner.skip("the rest of threading", str(error))
        finally:
            server.stop()
        self.phase("threading_s", t)


# ------------------------------------------------------------------------------ main
def npm_check():
    if not (BENCH / "reference" / "node_modules").is_dir():
        raise SystemExit("bench: run `npm ci --prefix bench/reference` first "
                         "(missing node_modules in reference; `make bench` does it)")


def measure(bench, only):
    """The suites in `only`, in order; the user pool registered first on the run's SQLite database."""
    if only & {"transport", "servers", "threading", "latency-disk", "storm", "profile"}:
        server = bench.server(bench.plan["papo"])
        try:
            bench.register(server)
            if "transport" in only:
                bench.budget.enter("transport")
                server = bench.transport(server)
                bench.budget.enter("sweep")
                bench.sweep(server)
        finally:
            bench.budget.leave()
            server.stop()
    if "servers" in only:
        bench.rounds()
    if bench.plan["threading"] and "threading" in only:
        bench.budget.enter("threading")
        bench.threading_once()
        bench.budget.leave()
    for suite, run in (("latency-disk", suites.latency_disk), ("storm", suites.storm_runs),
                       ("scaling", suites.scaling_runs), ("profile", suites.profiles)):
        if suite in only:
            t = time.monotonic()
            run(bench)
            bench.phase(f"{suite}_s", t)


def parse_only(text):
    if not text:
        return set(SUITES)
    only = {name.strip() for name in text.split(",") if name.strip()}
    unknown = only - set(SUITES)
    if unknown:
        raise SystemExit(f"bench: --only takes {', '.join(SUITES)}; not {', '.join(sorted(unknown))}")
    return only


def parse_ints(text):
    return None if not text else {int(x) for x in text.split(",") if x.strip()}


def parse_ways(text):
    if not text:
        return None
    ways = {w.strip() for w in text.split(",") if w.strip()}
    unknown = ways - {w[0] for w in WAYS}
    if unknown:
        raise SystemExit(f"bench: --ways takes {', '.join(w[0] for w in WAYS)}; not {', '.join(sorted(unknown))}")
    return ways


def run_bench(args):
    plan = dict(QUICK if args.quick else FULL)
    if args.budget:
        plan["budget"] = args.budget
    only = parse_only(args.only)
    sizes = parse_ints(args.sizes)
    if sizes:  # the plan records the sizes this run was asked for
        transport: dict = dict(plan["transport"])  # type: ignore[call-overload]
        transport["sizes"] = sorted(sizes)
        plan["transport"] = transport
    plan["suites"] = [name for name in SUITES if name in only]
    npm_check()
    limits = raise_open_files()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    record = Path(args.out) if args.out else RESULTS / f"bench-{stamp}-{plan['name']}.json"
    workdir = Path(tempfile.mkdtemp(prefix="papo-bench-"))
    atexit.register(shutil.rmtree, workdir, True)
    machine = machine_info()
    machine["loadavg_start"] = loadavg()
    meta = {
        "schema": SCHEMA, "mode": plan["name"], "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "started_local": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine, "versions": versions(), "commit": git_commit(), "plan": plan,
        "papo_settings": {k: v for k, v in papo_settings(Path("<tmp>")).items() if k != "SECRET_KEY"},
        "ways": [w[0] for w in WAYS], "user_pool": plan["user_pool"],
    }
    log(f"{plan['name']} run, budget {plan['budget']} s; results into {record}; "
        f"open files {limits[0]}; load average {machine['loadavg_start']}")
    runner = Runner(record, workdir, meta)
    runner.notes.extend(settings_check())
    bench = Bench(plan, runner, Budget(plan["budget"], shares(plan, only)), sizes=parse_ints(args.sizes),
                  ways=parse_ways(args.ways))
    failed = None
    try:
        t = time.monotonic()
        measure(bench, only)
        runner.phases["total_measuring_s"] = round(time.monotonic() - t, 1)
    except ServerError as error:
        failed = str(error)
        runner.notes.append(f"stopped early: {error}")
        log(f"stopped early: {error}")
    finally:
        CHILDREN.stop_all()
        data = runner.save(final=True)
        shutil.copyfile(record, RESULTS / "latest.json")
    log(f"measuring done in {data['elapsed_s']} s; {len(data['runs'])} invocations, "
        f"{sum(1 for r in data['runs'] if r['error'])} failed, {len(data['skipped'])} skipped")
    if plan["name"] == "full" and not failed and only == set(SUITES) and (args.save_baseline or not BASELINE.exists()):
        write_baseline(data)
    if not args.no_report:
        sys.path.insert(0, str(BENCH))
        import report
        report.write(data, baseline=load_baseline())
        log(f"wrote docs/benchmarks.md and docs/img/bench_*.png in {time.monotonic() - T0:.1f}s overall")
    bad = [r for r in data["runs"] if r["error"]]
    if failed or (bad and len(bad) > len(data["runs"]) // 4):
        log("too many failed invocations: see the report's errors")
        return 1
    return 0


def compact(data):
    """The results without the bulk (CDF points, per-broadcast details): small enough to commit."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("cdf", "broadcasts", "latency_arrivals_ms")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(data)


def write_baseline(data):
    small = compact(data)
    runs = small.pop("runs")
    head = json.dumps(small, separators=(",", ":"))
    body = ",\n".join(json.dumps(r, separators=(",", ":")) for r in runs)  # one invocation a line: readable diffs
    BASELINE.write_text(head[:-1] + ',"runs":[\n' + body + "\n]}\n")
    log(f"kept these results as {BASELINE.relative_to(ROOT)} ({BASELINE.stat().st_size // 1024} KB)")


def load_baseline():
    try:
        return json.loads(BASELINE.read_text())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------ --profile
PROFILE_WORKLOADS = {
    "fanout": ("fanout", ["--duration", "{d}", "--warmup", "1"]),
    "latency": ("latency", ["--duration", "{d}", "--warmup", "1"]),
    "persist": ("persist", ["--duration", "{d}", "--warmup", "1"]),
    "idle": ("idle", ["--clients", "5000", "--hold", "1", "--broadcasts", "5"]),
    "capacity": ("capacity", ["--step", "500", "--max-clients", "5000", "--samples", "40"]),
    "storm": ("storm", ["--clients", "10000", "--rooms", "100", "--rate", "1", "--before", "1"]),
}
for _name, _way, _extra in WAYS:
    PROFILE_WORKLOADS.setdefault(_way, ("transport", ["--way", _way, "--clients", "100", "--rate", "2",
                                                      "--duration", "{d}", "--warmup", "1"] + _extra))


def run_profile(args):
    mode, workload = args.profile
    if mode not in ("eventlet", "gevent", "threading"):
        raise SystemExit("bench: --profile MODE is one of eventlet, gevent, threading")
    if workload not in PROFILE_WORKLOADS:
        raise SystemExit(f"bench: --profile WORKLOAD is one of {', '.join(PROFILE_WORKLOADS)}")
    npm_check()
    raise_open_files()
    if not py_spy():
        raise SystemExit("bench: py-spy is not installed (make setup-dev installs requirements-dev.txt)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="papo-profile-"))
    atexit.register(shutil.rmtree, workdir, True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    svg = RESULTS / f"profile-{mode}-{workload}-{stamp}.svg"
    meta = {"schema": SCHEMA, "mode": "profile", "machine": machine_info(), "versions": {}, "plan": {},
            "user_pool": FULL["user_pool"]}
    runner = Runner(RESULTS / f"profile-{mode}-{workload}-{stamp}.json", workdir, meta)
    name, extra = PROFILE_WORKLOADS[workload]
    extra = [a.replace("{d}", str(args.seconds)) for a in extra]
    bench = Bench(FULL, runner, Budget(10 ** 6))
    server = bench.server(mode)
    spy = None
    run = None
    try:
        bench.register(server)
        # py-spy samples the whole run of the workload: connect, warm-up and window
        seconds = args.seconds + 15 if name not in ("idle", "storm") else 60
        spy = Spy(server.pid, svg, seconds=seconds, rate=200, flamegraph=True, err=workdir / "py-spy.err").start()
        time.sleep(1.0)
        if not spy.running():
            raise SystemExit(f"bench: py-spy stopped at once: {spy.error()}")
        run = runner.loadgen(server, name, extra, section="profile", label=f"profile {workload}", max_seconds=120)
    finally:
        if spy is not None:
            spy.stop()
        server.stop()
        runner.save(final=True)
    if svg.exists():
        log(f"flame graph: {svg.relative_to(ROOT)}; result: {headline(run)}")
        return 0
    log(f"py-spy wrote nothing: {tail(workdir / 'py-spy.err')}")
    return 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats, at most 2 minutes")
    parser.add_argument("--budget", type=float, help="seconds for the measurements (default: full 1500, quick 240)")
    parser.add_argument("--only", help=f"comma-separated suites, of: {', '.join(SUITES)} (default: all)")
    parser.add_argument("--sizes", help="the transport study's client counts to run, comma-separated (default: "
                        "the plan's)")
    parser.add_argument("--ways", help=f"the transport study's ways to run, of: {', '.join(w[0] for w in WAYS)}")
    parser.add_argument("--out", help="results file (default bench/results/bench-<date>-<mode>.json)")
    parser.add_argument("--no-report", action="store_true", help="measure only; bench/report.py writes it later")
    parser.add_argument("--save-baseline", action="store_true", help="keep this full run as bench/baseline.json")
    parser.add_argument("--profile", nargs=2, metavar=("MODE", "WORKLOAD"),
                        help="py-spy flame graph of Papo in MODE under WORKLOAD, into bench/results/")
    parser.add_argument("--seconds", type=float, default=10, help="--profile: the workload's window (default 10)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the generator's own progress lines")
    args = parser.parse_args(argv)
    rig.VERBOSE = args.verbose
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        return run_profile(args) if args.profile else run_bench(args)
    except KeyboardInterrupt:
        log("interrupted: stopping every process started")
        return 130
    finally:
        CHILDREN.stop_all()


if __name__ == "__main__":
    sys.exit(main())
