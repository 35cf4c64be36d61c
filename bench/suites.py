"""The suites of the storage and scale-out work: latency with the disk shared, the reconnect storm,
scaling over processes, and py-spy's summary of where Papo's time went in them.

Each suite takes the run's Bench (bench/run.py: the plan, the runner that records invocations,
the time budget, servers on the run's SQLite database) and records its invocations under its
own section: "latency-disk", "storm", "scaling", "profile".
"""
import contextlib
import resource

import disk
import scaling
import storm
from rig import ServerError, arg_list, log
from spy import Spy, py_spy, summarize


def rounds(bench, section, plan):
    """The round numbers of a suite, each entered in the budget as "<section> <n>"."""
    for round_no in range(1, plan["rounds"] + 1):
        bench.budget.enter(f"{section} {round_no}")
        try:
            yield round_no
        finally:
            bench.budget.leave()


# ------------------------------------------------------------------ latency with the disk shared
def latency_disk(bench):
    """The fixed latency load on each server, quiet and beside the disk neighbour, per round."""
    p = bench.plan["latency_disk"]
    load = p["load"]
    step = load["duration"] + load["warmup"] + load["drain"] + 4
    where = disk.filesystem(bench.runner.workdir)
    for round_no in rounds(bench, "latency-disk", p):
        for kind in p["servers"]:
            if not bench.budget.fits(2 * step + 3):
                bench.runner.skip(f"latency-disk {kind} round {round_no}", "time budget")
                continue
            server = bench.server(kind)
            try:
                for neighbour in (False, True):
                    latency_once(bench, server, load, neighbour, round_no, where)
            except ServerError as error:
                bench.runner.skip(f"the rest of latency-disk {kind} round {round_no}", str(error))
            finally:
                server.stop()


def latency_once(bench, server, load, neighbour, round_no, where, section="latency-disk"):
    """One latency invocation, with the neighbour writing meanwhile when asked."""
    p = bench.plan["latency_disk"]
    label = "latency, disk neighbour" if neighbour else "latency, quiet disk"
    seconds = load["duration"] + load["warmup"] + load["drain"] + 60
    with contextlib.ExitStack() as stack:
        writer = None
        if neighbour:
            writer = stack.enter_context(disk.Neighbour(bench.runner.workdir, seconds, p["neighbour"]))
        run = bench.runner.loadgen(server, "latency", arg_list(load), section=section, round_no=round_no,
                                   label=label, max_seconds=seconds,
                                   extra={"disk": "neighbour" if neighbour else "quiet", "database_fs": where})
    if writer is not None:
        run["neighbour"] = writer.result
        bench.runner.save()
    return run


# ------------------------------------------------------------------ the reconnect storm
def storm_size_fits(bench, clients):
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if clients + 300 <= limit:
        return True
    bench.runner.notes.append(f"storm of {clients:,}: not run, its descriptors pass the open-files limit of {limit}")
    return False


def storm_runs(bench):
    """Per round: the reference connecting the clients (its time is the goal), then Papo restarted
    under them by each way (SIGTERM, kill -9)."""
    p = bench.plan["storm"]
    if not storm_size_fits(bench, p["clients"]):
        return
    for round_no in rounds(bench, "storm", p):
        for how in ["connect"] + p["ways"]:
            kind = "reference" if how == "connect" else bench.plan["papo"]
            if not bench.budget.fits(storm_estimate(bench, kind, p)):
                bench.runner.skip(f"storm {how} round {round_no}", "time budget")
                continue
            try:
                storm_once(bench, kind, how, storm_args(p, kind), round_no)
            except ServerError as error:
                bench.runner.skip(f"storm {how} round {round_no}", str(error))


def storm_args(p, kind):
    """The generator's arguments: Papo's clients join in the handshake as its browser client does; the
    reference's by a `join` event after it, as socket.io has it."""
    args = arg_list({k: p[k] for k in ("clients", "rooms", "rate", "before", "recover-seconds")})
    return args if kind == "reference" else args + ["--handshake-joins"]


def storm_estimate(bench, kind, p):
    connect = p["clients"] / bench.runner.connect_rate.get(kind, 3000 if kind == "reference" else 800)
    return 3 + connect + p["before"] + (0 if kind == "reference" else 8 + connect)


def storm_once(bench, kind, how, args, round_no):
    p = bench.plan["storm"]
    server = bench.server(kind, env={"DRAIN_SECONDS": str(p["drain_seconds"])} if kind != "reference" else None)
    try:
        if how == "connect":
            return bench.runner.loadgen(server, "storm", args, section="storm", round_no=round_no,
                                        label="storm: connect", max_seconds=p["max_seconds"], extra={"how": how})
        run = bench.runner.loadgen(server, "storm", args + ["--restart"], section="storm", round_no=round_no,
                                   label=f"storm: {how}", max_seconds=p["max_seconds"], extra={"how": how},
                                   on_ready=lambda: storm.restart(server, how, p["drain_limit"]))
        run.update(storm.recovery_cpu(server, run) or {})
        bench.runner.save()
        return run
    finally:
        server.stop(grace=3)  # thousands of connections make a graceful exit slow; nothing is being written


# ------------------------------------------------------------------ scale-out
def scaling_runs(bench):
    """Per round, every configuration (Papo 1 process without and with Redis, 2 and 3 with; the
    reference 1 and 2 with its adapter): fan-out in one room and the latency load, clients spread."""
    p = bench.plan["scaling"]
    redis, database = scaling.Redis(bench.runner.workdir), scaling.Database()
    try:
        redis.start()
        database.create()
        for round_no in rounds(bench, "scaling", p):
            for config in p["configs"]:
                scaling_config(bench, config, redis, database, round_no)
    except ServerError as error:
        bench.runner.skip("scaling", str(error))
    finally:
        redis.stop()
        database.drop()


def scaling_config(bench, config, redis, database, round_no):
    p = bench.plan["scaling"]
    kind, n, with_redis = config
    steps = [("fanout", p["fanout"]), ("latency", p["latency"])]
    estimate = 3 * n + sum(o["duration"] + o["warmup"] + o.get("drain", 0) + 2 for _, o in steps)
    name = f"{kind} x{n}{' Redis' if with_redis else ''}"
    if not bench.budget.fits(estimate):
        bench.runner.skip(f"scaling {name} round {round_no}", "time budget")
        return
    workdir = bench.runner.workdir
    try:
        if kind == "reference":
            servers = scaling.reference_processes(workdir, n, redis)
        else:
            servers = scaling.papo_processes(workdir, n, database, kind, redis if with_redis else None)
    except ServerError as error:
        bench.runner.skip(f"scaling {name} round {round_no}", str(error))
        return
    try:
        for workload, options in steps:
            bench.runner.loadgen(servers[0], workload, arg_list(options), servers=servers, section="scaling",
                                 round_no=round_no, label=f"{workload}: {servers[0].label}", max_seconds=150,
                                 extra={"processes": n, "redis": with_redis, "config": servers[0].label})
    finally:
        scaling.stop_all(servers)
        redis.flush()


# ------------------------------------------------------------------ where the time goes
def profiles(bench):
    """py-spy over Papo under the latency load beside the disk neighbour, under the persistence load,
    and under a storm's connect phase."""
    p = bench.plan["profile"]
    if not py_spy():
        bench.runner.notes.append("py-spy is not installed: no profile (make setup-dev installs it)")
        return
    bench.budget.enter("profile")
    try:
        if bench.budget.fits(p["seconds"] + 10):
            profile_latency(bench, p)
        else:
            bench.runner.skip("profile under the disk neighbour", "time budget")
        if bench.budget.fits(p["seconds"] + 10):
            profile_persist(bench, p)
        else:
            bench.runner.skip("profile under the persistence load", "time budget")
        if p.get("storm") and bench.budget.fits(storm_estimate(bench, bench.plan["papo"], bench.plan["storm"])):
            profile_storm(bench)
        elif p.get("storm"):
            bench.runner.skip("profile of a storm's connect phase", "time budget")
    except ServerError as error:
        bench.runner.skip("profile", str(error))
    finally:
        bench.budget.leave()


def profile_latency(bench, p):
    load = dict(bench.plan["latency_disk"]["load"], duration=p["seconds"])
    where = disk.filesystem(bench.runner.workdir)
    profiled(bench, "latency", p["seconds"] + 30,
             lambda server: latency_once(bench, server, load, True, None, where, "profile"))


def profile_persist(bench, p):
    load = dict(bench.plan["persist"], duration=p["seconds"])
    profiled(bench, "persist", p["seconds"] + 30,
             lambda server: bench.runner.loadgen(server, "persist", arg_list(load), section="profile",
                                                 label="persistence", max_seconds=120))


def profile_storm(bench):
    p = bench.plan["storm"]
    args = storm_args(p, bench.plan["papo"])
    # the connect phase of the first server: a storm's connections as the first start sees them
    profiled(bench, "storm", p["max_seconds"],
             lambda server: bench.runner.loadgen(server, "storm", args, section="profile", label="storm: connect",
                                                 max_seconds=p["max_seconds"], extra={"how": "connect"}),
             grace=3)  # thousands of connections make a graceful exit slow


def profiled(bench, name, seconds, work, grace=5.0):
    """Run work(server) on a new Papo server under py-spy (at most `seconds`); its summary joins the run."""
    server = bench.server(bench.plan["papo"])
    spy = Spy(server.pid, bench.runner.workdir / f"profile-{name}.txt", seconds=seconds).start()
    run = None
    try:
        run = work(server)
    finally:
        attach(bench, run, spy)
        server.stop(grace=grace)


def attach(bench, run, spy):
    path = spy.stop()
    if run is None:
        return
    text = path.read_text(errors="replace") if path else ""
    run["profile"] = summarize(text) if text else None
    if not text:
        log(f"py-spy recorded nothing: {spy.error()}")
        run["profile_error"] = spy.error()
    bench.runner.save()
