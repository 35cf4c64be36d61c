"""The figures of a results file of bench/run.py: pure functions from its JSON to numbers and verdicts.

bench/report.py writes them as prose, tables and plots; nothing here formats text or touches a file.
"""
import math
import re
import statistics
from typing import Any

LOAD_WARN = 1.5  # 1-minute load average above which a figure is marked
PAPO_MODES = ("eventlet", "gevent", "threading")
DEFAULT_MODE = "gevent"  # Papo's default ASYNC_MODE (chat/config.py): the one mode the storage suites measure
MEMORY = "-memory"  # a server kind's suffix: Papo with its messages in memory (bench/memory_server.py)
GOALS = [  # key, label, comparison, target
    ("fanout", "Fan-out (deliveries/s)", ">=", 1.0),
    ("latency_p99", "p99 latency at fixed load", "<=", 2.0),
    ("mem_per_conn", "Memory per connection", "<=", 1.5),
    ("broadcast", "One broadcast reaching every connection", "<=", 1.0),
    ("capacity", "Capacity (clients within 250 ms p95)", ">=", 1.0),
]
DISTURBED = 1.0  # cores other processes took during an invocation: half this machine, the benchmark needs both
MIN_CPU_S = 0.1  # server CPU in a window below this (10 clock ticks) is too coarse for a per-message figure
LOAD_MARK = "⚠"
SERVER_NAMES = {"reference": "Node reference", "eventlet": "Papo eventlet", "gevent": "Papo gevent",
                "gevent-memory": "Papo gevent, messages in memory", "threading": "Papo threading (dev server)"}

def get(obj, path, default=None):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return default
        obj = obj[part]
    return obj


def median(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else None


def safe_ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


class Results:
    """Queries over one results file."""

    def __init__(self, data):
        self.data = data
        self.runs = data.get("runs", [])

    def select(self, section=None, server=None, workload=None, label=None, ok=True, **extra):
        out = []
        for run in self.runs:
            if section and run.get("section") != section:
                continue
            if server and run.get("server") != server:
                continue
            if workload and run.get("workload") != workload:
                continue
            if label and run.get("label") != label:
                continue
            if any(run.get(k) != v for k, v in extra.items()):
                continue
            if ok and (run.get("error") or not run.get("result")):
                continue
            out.append(run)
        return out

    def servers(self):
        seen = []
        for run in self.runs:
            if run.get("section") == "server" and run["server"] not in seen:
                seen.append(run["server"])
        order = ["reference", "eventlet", "gevent", "gevent-memory", "threading"]
        return sorted(seen, key=lambda s: order.index(s) if s in order else 99)

    def idle_sizes(self):
        return sorted({r.get("clients") for r in self.select(section="server", workload="idle")} - {None})


def noise(runs):
    """(load average mark, the highest 1-minute load, the most CPU other processes took)."""
    loads = [max(r.get("loadavg_start") or 0, r.get("loadavg_end") or 0) for r in runs]
    others = [r.get("others_cpu_cores") for r in runs if r.get("others_cpu_cores") is not None]
    top = max(loads) if loads else None
    mark = LOAD_MARK if top is not None and top > LOAD_WARN else ""
    return mark, top, (max(others) if others else None)


def cpu_per_delivery(result):
    """Server µs per delivered message, None when the window held too few clock ticks (10 ms each) to tell."""
    value = result.get("server_cpu_us_per_delivery") if result else None
    if value is None or (get(result, "server.cpu_s") or 0) < MIN_CPU_S:
        return None
    return value


def cpu_upper_bound(result):
    """Server µs per delivery at most, for a window with fewer than MIN_CPU_S of server CPU."""
    cpu_s = get(result, "server.cpu_s")
    delivered = (result.get("deliveries_per_s") or 0) * float(get(result, "params.duration", 0) or 0)
    if cpu_s is None or not delivered:
        return None
    return max(cpu_s, MIN_CPU_S) * 1e6 / delivered


def kept_up(result):
    """The generator's keep-up rule, with a window's quantisation allowed for.

    The generator calls a way kept up when it sent >= 97% of its schedule, >= 99% of the window's
    messages were delivered and p99 stayed within the way's limit. Over a short window with few
    messages per client the "sent" count alone misses 97% by the luck of the clients' random phases
    (each client sends 0, 1 or 2 messages in it): here the count may fall short by three standard
    deviations of that luck, 3 x sqrt(expected), as long as the generator skipped no send (it skips
    only past its limit of unacknowledged messages) and was not saturated.
    """
    if not result:
        return False
    lat = result.get("latency_ms") or {}
    if not lat.get("count"):
        return False
    match = re.search(r"p99<=(\d+)", result.get("kept_up_rule", ""))
    limit = float(match.group(1)) if match else 1000.0
    duration = float(get(result, "params.duration", 0) or 0)
    expected = (result.get("send_target_per_s") or 0) * duration
    sent = (result.get("sent_per_s") or 0) * duration
    schedule_kept = (sent >= 0.97 * expected or (
        sent >= 0.97 * expected - 3 * math.sqrt(expected) and not result.get("skipped_over_outstanding")
        and not get(result, "generator.bound")))
    return result.get("delivered_ratio", 0) >= 0.99 and lat.get("p99", math.inf) <= limit and schedule_kept


def disturbed(run):
    return (run.get("others_cpu_cores") or 0) >= DISTURBED


def undisturbed(runs):
    """The repeats that other processes left alone, if any; else all of them."""
    calm = [r for r in runs if not disturbed(r)]
    return calm or list(runs)


def entry(runs, path):
    """(median over the undisturbed repeats, those runs, every repeat) of the value at `path`
    (or of path(run), a function)."""
    used = undisturbed(runs)
    value = path if callable(path) else (lambda r: get(r, path))
    return median([value(r) for r in used]), used, runs


SERVER_FIGURES = [  # key, workload, path in a run
    ("fanout", "fanout", "result.deliveries_per_s"),
    ("latency_p50", "latency", "result.latency_ms.p50"),
    ("latency_p99", "latency", "result.latency_ms.p99"),
    ("persist", "persist", "result.acked_per_s"),
    ("capacity", "capacity", "result.capacity_clients"),
]


def server_figures(res):
    """Per server and figure: (median over the undisturbed repeats, those runs, every repeat)."""
    out = {}
    for server in res.servers():
        f = {key: entry(res.select(section="server", server=server, workload=workload), path)
             for key, workload, path in SERVER_FIGURES}
        for size in res.idle_sizes():
            runs = res.select(section="server", server=server, workload="idle", clients=size)
            runs = [r for r in runs if get(r, "result.connected", 0) >= 0.99 * size]
            f[f"mem_per_conn@{size}"] = entry(runs, "result.server_rss_kb.per_connection_kb")
            f[f"broadcast@{size}"] = entry(runs, "result.reach_all_ms_median")
        out[server] = f
    return out


def goal_size(res, figs):
    """The idle size the memory and broadcast goals use: 10k when both sides have it, else the largest shared."""
    ref = figs.get("reference", {})
    shared = [s for s in res.idle_sizes() if ref.get(f"mem_per_conn@{s}", (None,))[0] is not None]
    if 10000 in shared:
        return 10000
    return max(shared) if shared else None


def goals(res, figs):
    """{mode: {goal key: (ratio, papo value, reference value, passed, runs)}}."""
    size = goal_size(res, figs)
    ref = figs.get("reference")
    out: dict[str, dict] = {}
    if not ref:
        return out, size
    for mode in PAPO_MODES:
        if mode not in figs:
            continue
        f = figs[mode]
        row = {}
        for key, _label, op, target in GOALS:
            fkey = key if key not in ("mem_per_conn", "broadcast") else f"{key}@{size}"
            papo, runs = f.get(fkey, (None, [], []))[:2]
            base, ref_runs = ref.get(fkey, (None, [], []))[:2]
            at = None
            if papo is None and key in ("mem_per_conn", "broadcast") and size:
                # a mode that could not hold the size (open files) is compared at its largest size
                # within 10% below it
                near = [s for s in res.idle_sizes() if 0.9 * size <= s < size
                        and f.get(f"{key}@{s}", (None,))[0] is not None]
                if near:
                    at = max(near)
                    papo, runs = f[f"{key}@{at}"][:2]
            r = safe_ratio(papo, base)
            passed = None if r is None else (r >= target if op == ">=" else r <= target)
            row[key] = (r, papo, base, passed, runs + ref_runs, at)
        out[mode] = row
    return out, size


def transport_figures(res):
    """{(way, clients): run} for the size study; {way: [runs by rate]} for the sweep."""
    sizes = {}
    for run in res.select(section="transport"):
        sizes[(run.get("way"), run.get("clients"))] = run
    sweep: dict[str, list[dict]] = {}
    for run in res.select(section="sweep"):
        sweep.setdefault(run.get("way"), []).append(run)
    return sizes, sweep


def sweep_limits(res):
    """{way: {'tried': [(rate, kept, run)], 'ok': highest kept rate, 'fail': first failing rate}}."""
    sizes, sweep = transport_figures(res)
    sc = res.data.get("plan", {}).get("transport", {}).get("sweep_clients")
    out = {}
    for way in res.data.get("ways", []):
        tried = []
        base = sizes.get((way, sc))
        if base:
            tried.append((base.get("rate"), kept_up(base["result"]), base))
        for run in sweep.get(way, []):
            tried.append((run.get("rate"), kept_up(run["result"]), run))
        if not tried:
            continue
        tried.sort(key=lambda t: t[0])
        ok, fail = None, None
        for rate, kept, _ in tried:
            if kept and fail is None:
                ok = rate
            elif not kept and fail is None:
                fail = rate
        cut = any(s["what"].startswith(f"rate sweep {way} ") for s in res.data.get("skipped", []))
        out[way] = {"tried": tried, "ok": ok, "fail": fail, "cut": cut}
    return out


def descriptors(way, clients, senders):
    """Open files the generator needs for a transport run (the server about as many): a socket per client,
    one more per sending client of the HTTP ways, two per Engine.IO polling client; 200 to spare.
    The generator's own check (bench/loadgen/loadgen.js, socketsPerClient) counts the same."""
    if way == "ws":
        per_sender, per_receiver = 1, 1
    elif way == "sio-polling":
        per_sender, per_receiver = 2, 2
    else:
        per_sender, per_receiver = 2, 1
    senders = min(senders, clients) if senders else clients
    return senders * per_sender + (clients - senders) * per_receiver + 200


def behind_why(result):
    """Why a transport run did not keep up, in a few words (None when it did)."""
    if result is None:
        return "the run failed"
    if kept_up(result):
        return None
    lat = result.get("latency_ms") or {}
    match = re.search(r"p99<=(\d+)", result.get("kept_up_rule", ""))
    limit = float(match.group(1)) if match else 1000.0
    why = []
    if (result.get("delivered_ratio") or 0) < 0.99:
        why.append(f"delivered {100 * (result.get('delivered_ratio') or 0):.3g}% of the window's messages")
    if lat.get("count") and lat.get("p99", 0) > limit:
        why.append(f"p99 {lat['p99']:,.0f} ms > {limit:,.0f}")
    target = result.get("send_target_per_s") or 0
    if target and (result.get("sent_per_s") or 0) < 0.97 * target:
        why.append(f"sent {100 * result['sent_per_s'] / target:.0f}% of the schedule")
    ack = get(result, "ack_ms.p50")
    if ack is not None and ack > 100:
        why.append(f"sends answered after {ack:,.0f} ms (p50)")
    if (get(result, "errors.clients") or 0) > 0:
        why.append(f"{result['errors']['clients']} clients could not connect")
    return ", ".join(why) or "behind"


def scale_limits(res):
    """{way: {"sizes": [(clients, kept, run)], "held": the largest size kept up at before the first that was
    not, "limit": that first size (None: held at every size run), "why": its reason, "not_run": [(clients,
    why)] sizes the run skipped (open files, time)}}, the ways in the results' order."""
    out: dict[str, dict] = {}
    order = res.data.get("ways", [])
    for run in sorted(res.select(section="transport", ok=False), key=lambda r: r.get("clients") or 0):
        way = run.get("way")
        info = out.setdefault(way, {"sizes": [], "held": None, "limit": None, "why": None, "not_run": []})
        result = None if run.get("error") else run.get("result")
        kept = kept_up(result)
        info["sizes"].append((run.get("clients"), kept, run))
        if info["limit"] is not None:
            continue
        if kept:
            info["held"] = run.get("clients")
        else:
            info["limit"] = run.get("clients")
            info["why"] = behind_why(result) if result else f"failed: {str(run.get('error'))[:90]}"
    for skip in res.data.get("skipped", []):
        match = re.match(r"transport (.+) at (\d+) clients$", skip.get("what", ""))
        if match and match.group(1) in out:
            out[match.group(1)]["not_run"].append((int(match.group(2)), skip.get("why")))
        elif match:
            out[match.group(1)] = {"sizes": [], "held": None, "limit": None, "why": None,
                                   "not_run": [(int(match.group(2)), skip.get("why"))]}
    return {w: out[w] for w in sorted(out, key=lambda w: order.index(w) if w in order else 99)}


def idle_memory(run):
    """Server KB per idle client of a transport run on a fresh server, else None (a server that served
    other runs before reuses memory they freed)."""
    if not run or not run.get("fresh"):
        return None
    return get(run, "result.server_rss_kb.per_client_kb")


def summarize(data):
    """The figures the "before and after" table compares: {key: (label, value, unit, better)}."""
    res = Results(data)
    figs = server_figures(res)
    out = {}
    size = goal_size(res, figs)
    for server, f in figs.items():
        name = SERVER_NAMES.get(server, server)
        out[f"fanout/{server}"] = (f"{name}: fan-out", f["fanout"][0], "deliveries/s", "higher")
        out[f"p50/{server}"] = (f"{name}: latency p50", f["latency_p50"][0], "ms", "lower")
        out[f"p99/{server}"] = (f"{name}: latency p99", f["latency_p99"][0], "ms", "lower")
        out[f"persist/{server}"] = (f"{name}: persistence", f["persist"][0], "acked/s", "higher")
        # capacity is comparable only under the same ceiling, memory and broadcast only at the same size
        ceiling = get(data, "plan.capacity.max-clients")
        out[f"capacity/{server}/{ceiling}"] = (f"{name}: capacity (at most {ceiling:,})" if ceiling else
                                               f"{name}: capacity", f["capacity"][0], "clients", "higher")
        if size:
            out[f"mem/{server}/{size}"] = (f"{name}: memory per connection at {size:,}",
                                           f.get(f"mem_per_conn@{size}", (None,))[0], "KB", "lower")
            out[f"bcast/{server}/{size}"] = (f"{name}: broadcast to {size:,}",
                                             f.get(f"broadcast@{size}", (None,))[0], "ms", "lower")
    sizes, _ = transport_figures(res)
    for (way, clients), run in sizes.items():
        # only runs under the same load compare: messages/s in (before the scale study, every client sent)
        load = f"{(run.get('senders') or clients) * (run.get('rate') or 0):g}"
        out[f"tr-cpu/{way}/{clients}/{load}"] = (f"{way} x{clients}: server CPU per delivered message",
                                                 cpu_per_delivery(run["result"]), "µs", "lower")
        out[f"tr-p99/{way}/{clients}/{load}"] = (f"{way} x{clients}: latency p99", get(run, "result.latency_ms.p99"),
                                                 "ms", "lower")
    return out


# ------------------------------------------------------------------ the storage and scale-out suites
DISKS = ("quiet", "neighbour")


def latency_of(q):
    """A run's latency quantile q; for a server so far behind that none of the window's messages
    arrived before the drain ended, that of what arrived during the window (a lower bound)."""
    def value(run):
        if get(run, "result.latency_ms.count"):
            return get(run, f"result.latency_ms.{q}")
        return get(run, f"result.latency_arrivals_ms.{q}")
    return value


def behind(runs):
    """Whether any of the runs delivered less than 99% of its window's messages before the drain ended."""
    return any((get(r, "result.delivered_ratio") or 0) < 0.99 for r in runs)


def latency_disk_figures(res):
    """{server: {disk: {"p50"|"p99"|"max": entry}}} of the latency-disk suite (entry as in `entry`)."""
    out: dict[str, dict[str | None, list[dict]]] = {}
    for run in res.select(section="latency-disk"):
        out.setdefault(run["server"], {}).setdefault(run.get("disk"), []).append(run)
    return {server: {disk: {q: entry(runs, latency_of(q)) for q in ("p50", "p99", "max")}
                     for disk, runs in by_disk.items()}
            for server, by_disk in out.items()}


def since_signal_s(run):
    """Seconds from the driver's signal to the generator's last re-join (one wall clock)."""
    back = get(run, "result.t_all_back_wall_ms")
    signal_s = get(run, "restart.t_signal_wall_s")
    return None if back is None or signal_s is None else round(back / 1000 - signal_s, 3)


def storm_figures(res):
    """{how: {figure: entry}} of the storm suite; how: connect (the reference), sigterm, kill9.
    Papo's connect figures come from the connect phase of its restart runs."""
    runs = res.select(section="storm")
    out = {}
    ref = [r for r in runs if r.get("server") == "reference"]
    papo = [r for r in runs if r.get("server") != "reference"]
    for who, group in (("reference", ref), ("papo", papo)):
        if group:
            out[f"connect/{who}"] = {"connect_s": entry(group, "result.connect_s"),
                                     "cpu_us": entry(group, "result.server_cpu_us_per_connect"),
                                     "clients": entry(group, "result.connected")}
    for how in ("sigterm", "kill9"):
        group = [r for r in papo if r.get("how") == how]
        if not group:
            continue
        out[how] = {"recovered_s": entry(group, "result.recovered_s"), "since_signal_s": entry(group, since_signal_s),
                    "exit_s": entry(group, "restart.exit_s"), "start_s": entry(group, "restart.start_s"),
                    "reconnect_cpu_us": entry(group, "server_cpu_us_per_reconnect"),
                    "missing": sum(get(r, "result.missing") or 0 for r in group),
                    "changed": sum(get(r, "result.changed") or 0 for r in group),
                    "all_back": all(get(r, "result.recovered") for r in group),
                    "nothing_missing": all(get(r, "result.nothing_missing") for r in group),
                    "forced": sum(1 for r in group if get(r, "restart.drain_forced")), "runs": group}
    return out


def scaling_figures(res):
    """{(server, processes, redis): {"fanout"|"p50"|"p99": entry, "label": str}}, in the plan's order."""
    groups: dict[tuple, dict[str, Any]] = {}
    for run in res.select(section="scaling"):
        key = (run["server"], run.get("processes"), bool(run.get("redis")))
        groups.setdefault(key, {"label": run.get("config"), "fanout": [], "latency": []})
        groups[key][run["workload"]].append(run)
    return {key: {"label": g["label"], "fanout": entry(g["fanout"], "result.deliveries_per_s"),
                  "busy": entry(g["fanout"], busy_cores), "servers_busy": entry(g["fanout"], server_cores),
                  "p50": entry(g["latency"], latency_of("p50")),
                  "p99": entry(g["latency"], latency_of("p99")),
                  "delivered": entry(g["latency"], "result.delivered_ratio")}
            for key, g in groups.items()}


def server_cores(run: dict) -> float | None:
    """The cores the run's server processes kept busy, on average over its invocation."""
    wall, srv = run.get("wall_s"), run.get("server_cpu_s")
    return None if not wall or srv is None else srv / wall


def busy_cores(run: dict) -> float | None:
    """The cores the whole machine kept busy during the run: servers, generator and every other process."""
    servers, wall = server_cores(run), run.get("wall_s")
    gen, others = run.get("generator_cpu_s"), run.get("others_cpu_cores")
    if servers is None or gen is None or others is None or not wall:
        return None
    return servers + gen / wall + others


def machine_ceiling(figs: dict, cores: int | None, papo: str) -> dict | None:
    """What the machine's cores allow two Papo processes, at the CPU the whole machine spent per delivery with them.

    {"us_per_delivery", "most_per_s", "most_ratio" (of one process without Redis), "goal", "cores_for_goal"};
    None without the figures. Every delivery costs the servers, the generator, Redis and PostgreSQL
    CPU on the same machine, so its cores bound the fan-out whatever the servers do.
    """
    two, one = figs.get((papo, 2, True)), figs.get((papo, 1, False))
    if not two or not one or not cores:
        return None
    rate, busy, base = two["fanout"][0], two["busy"][0], one["fanout"][0]
    if not rate or not busy or not base:
        return None
    per = busy / rate
    target = next(goal[3] for goal in STRESS_GOALS if goal[0] == "two_processes")
    return {"us_per_delivery": per * 1e6, "most_per_s": cores / per, "most_ratio": cores / per / base,
            "goal": target, "cores_for_goal": target * base * per}


STRESS_GOALS = [  # key, label, comparison, target
    ("p99_quiet", "p99 latency, quiet disk (Papo / reference)", "<=", 2.0),
    ("p99_neighbour", "p99 latency, disk neighbour (Papo / reference)", "<=", 2.0),
    ("max_quiet", "maximum latency, quiet disk (Papo / reference)", "<=", 3.0),
    ("max_neighbour", "maximum latency, disk neighbour (Papo / reference)", "<=", 3.0),
    ("connect_cpu", "server CPU per connection (Papo / reference)", "<=", 1.0),
    ("storm_sigterm", "storm recovered after SIGTERM (Papo s / reference's connect s)", "<=", 1.0),
    ("storm_kill9", "storm recovered after kill -9 (Papo s / reference's connect s)", "<=", 1.0),
    ("persist", "persistence, acked messages/s (Papo / reference)", ">=", 1.0),
    ("redis_cost", "fan-out, 1 process with Redis / without", ">=", 0.8),
    ("two_processes", "fan-out, 2 processes / 1 process without Redis", ">=", 1.7),
    ("p99_two", "p99 at 2,000 msg/s, Papo 2 processes / reference 2 processes", "<=", 2.0),
]


def first(value):
    return value[0] if value else None


def measured_mode(res) -> str:
    """The Papo mode the storage and scale-out suites measured (the default ASYNC_MODE of the run's checkout)."""
    return res.data.get("plan", {}).get("papo", "eventlet")  # runs before the plan named it measured eventlet


def stress_ratios(res):
    """{goal key: (Papo's figure, the figure it is compared with)} for STRESS_GOALS."""
    papo = measured_mode(res)
    lat = latency_disk_figures(res)
    storm = storm_figures(res)
    scale = scaling_figures(res)
    persist = server_figures(res)

    def disk(server, d, q):
        return first(lat.get(server, {}).get(d, {}).get(q))

    ref_connect = first(storm.get("connect/reference", {}).get("connect_s"))
    one = first(scale.get((papo, 1, False), {}).get("fanout"))
    return {
        "p99_quiet": (disk(papo, "quiet", "p99"), disk("reference", "quiet", "p99")),
        "p99_neighbour": (disk(papo, "neighbour", "p99"), disk("reference", "neighbour", "p99")),
        "max_quiet": (disk(papo, "quiet", "max"), disk("reference", "quiet", "max")),
        "max_neighbour": (disk(papo, "neighbour", "max"), disk("reference", "neighbour", "max")),
        "connect_cpu": (first(storm.get("connect/papo", {}).get("cpu_us")),
                        first(storm.get("connect/reference", {}).get("cpu_us"))),
        "storm_sigterm": (first(storm.get("sigterm", {}).get("since_signal_s")), ref_connect),
        "storm_kill9": (first(storm.get("kill9", {}).get("since_signal_s")), ref_connect),
        "persist": (first(persist.get(papo, {}).get("persist")), first(persist.get("reference", {}).get("persist"))),
        "redis_cost": (first(scale.get((papo, 1, True), {}).get("fanout")), one),
        "two_processes": (first(scale.get((papo, 2, True), {}).get("fanout")), one),
        "p99_two": (first(scale.get((papo, 2, True), {}).get("p99")),
                    first(scale.get(("reference", 2, True), {}).get("p99"))),
    }


def persist_floor(res):
    """(Papo's acked/s, Papo's with its messages in memory, the reference's) under the persistence load,
    medians of this run; None unless all three were measured."""
    papo = measured_mode(res)
    figs = server_figures(res)
    floor = tuple(first(figs.get(server, {}).get("persist")) for server in (papo, papo + MEMORY, "reference"))
    return None if None in floor else floor


def papo_behind(res):
    """The latency goals whose Papo runs fell behind (their latency is then only a lower bound)."""
    papo = measured_mode(res)
    lat = latency_disk_figures(res).get(papo, {})
    two = scaling_figures(res).get((papo, 2, True), {})
    out = set()
    for disk in DISKS:
        if behind((lat.get(disk, {}).get("p99") or (None, [], []))[2]):
            out |= {f"p99_{disk}", f"max_{disk}"}
    if behind((two.get("p99") or (None, [], []))[2]):
        out.add("p99_two")
    return out


def stress_goals(res):
    """[(key, label, op, target, ratio, papo, other, passed)]: passed is None where not measured; a
    storm with anything missing, or a latency load Papo fell behind on, fails whatever its figure."""
    ratios = stress_ratios(res)
    storm = storm_figures(res)
    fell_behind = papo_behind(res)
    out = []
    for key, label, op, target in STRESS_GOALS:
        papo, other = ratios[key]
        r = safe_ratio(papo, other)
        passed = None if r is None else (r >= target if op == ">=" else r <= target)
        if passed and key.startswith("storm_"):
            s = storm.get(key.split("_", 1)[1], {})
            passed = bool(s.get("nothing_missing") and s.get("all_back"))
        if passed and key in fell_behind:
            passed = False
        out.append((key, label, op, target, r, papo, other, passed))
    return out


def profile_runs(res):
    """The runs with a py-spy summary: [(label, server, summary)]."""
    return [(r.get("label"), r.get("server"), r["profile"]) for r in res.runs if r.get("profile")]
