#!/usr/bin/env python3
"""Turn a results file of bench/run.py into docs/benchmarks.md and docs/img/bench_*.png.

    python bench/report.py [RESULTS.json] [--baseline bench/baseline.json] [--out docs/benchmarks.md]

RESULTS defaults to bench/results/latest.json (the last run). Every sentence of the report's
conclusions is computed from the figures in the file; nothing is written in advance.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import plots as draw
import report_stress
from figures import (
    DISTURBED,
    GOALS,
    LOAD_MARK,
    LOAD_WARN,
    MEMORY,
    SERVER_NAMES,
    Results,
    cpu_per_delivery,
    cpu_upper_bound,
    disturbed,
    get,
    goals,
    kept_up,
    latency_disk_figures,
    median,
    noise,
    safe_ratio,
    scaling_figures,
    server_figures,
    summarize,
    idle_memory,
    scale_limits,
    sweep_limits,
    transport_figures,
)
from plots import plots
from text import columns, fmt, ratio_text, spread

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"
WAY_NAMES = {"ws": "Socket.IO over WebSocket", "sio-polling": "Socket.IO over long-polling only",
             "short-poll 1s": "HTTP short polling every 1 s", "short-poll 250ms": "HTTP short polling every 250 ms",
             "long-poll": "HTTP long polling",
             "sse": "Server-Sent Events (`GET /api/stream`, read as EventSource does; sends over HTTP POST)"}
README = ROOT / "README.md"
README_START, README_END = "<!-- bench:transport:start -->", "<!-- bench:transport:end -->"
POLLING = ("sio-polling", "short-poll 1s", "short-poll 250ms", "long-poll")
GEN_MARK = "‡"








def gen_text(runs, key="generator"):
    """The generator's CPU (highest % of one core over the runs), marked when it was saturated."""
    pcts = [get(r, f"result.{key}.cpu_pct") for r in runs]
    pcts = [p for p in pcts if p is not None]
    bound = any(get(r, f"result.{key}.bound") for r in runs) or any(
        get(r, "result.generator_bound_any") for r in runs)
    if not pcts:
        return "–"
    return f"{max(pcts):.0f}%{' ' + GEN_MARK if bound else ''}"


def load_text(runs):
    mark, top, others = noise(runs)
    if top is None:
        return "–"
    text = f"{top:.1f}"
    if others is not None:
        text += f" / {others:.2f}"
    return text + (f" {mark}" if mark else "")




def cpu_cell(result):
    value = cpu_per_delivery(result)
    if value is not None:
        return fmt(value)
    bound = cpu_upper_bound(result)
    return "–" if bound is None else f"< {fmt(bound)}"




# ------------------------------------------------------------------------------ the figures






def runs_cell(entry):
    used, every = entry[1], entry[2]
    if not every:
        return "–"
    return f"{len(used)}/{len(every)}" + ("" if len(used) < len(every) or not any(map(disturbed, used)) else " ⚠")










# ------------------------------------------------------------------------------ plots




# ------------------------------------------------------------------------------ the text
def rel(path, start):
    return str(Path(path).resolve().relative_to(start.resolve())) if str(path).startswith(str(ROOT)) else str(path)


def header(data):
    m = data.get("machine", {})
    v = data.get("versions", {})
    lines = [
        "# Benchmarks: WebSocket against polling, and Papo against a Node socket.io reference",
        "",
        f"Written by `make bench{'-quick' if data.get('mode') == 'quick' else ''}` "
        f"({data.get('mode')} run) on {data.get('started_local') or data.get('started')}, "
        f"commit {data.get('commit') or '?'}; it replaces the previous results. The raw results are in "
        "`bench/results/` (not committed); `python bench/report.py bench/results/<file>.json` writes this page "
        "and its plots again from one of them.",
        "",
    ]
    if data.get("mode") == "quick":
        lines += ["> **Quick run**: fewer sizes, one repeat, short windows. Its figures show that everything works; "
                  "the ratios and goals need `make bench` (three repeats, 10k connections).", ""]
    if not data.get("complete"):
        lines += ["> **Incomplete run**: it was stopped before the end; what it measured is below.", ""]
    mem = m.get("mem_total_kb")
    phases = ", ".join(f"{k} {v}" for k, v in data.get("phases", {}).items())
    la0, la1 = m.get("loadavg_start"), m.get("loadavg_end")
    lines += [
        "| machine | |", "|---|---|",
        f"| CPU | {m.get('cpu_model')}, {m.get('cores')} cores |",
        f"| memory | {mem / 1048576:.1f} GiB |" if mem else "| memory | ? |",
        f"| kernel | Linux {m.get('kernel')} ({m.get('os')}) |",
        f"| open files (soft/hard) | {m.get('open_files_limit')} / {m.get('open_files_hard_limit')} |",
        f"| load average (1, 5, 15 min) at start | {', '.join(f'{x:.2f}' for x in la0) if la0 else '?'} |",
        f"| load average at end | {', '.join(f'{x:.2f}' for x in la1) if la1 else '?'} |",
        f"| duration | {data.get('elapsed_s')} s ({phases}) |",
        "",
        "| software | version |", "|---|---|",
    ]
    for name in ("Python", "Flask", "Flask-SocketIO", "python-socketio", "python-engineio", "simple-websocket",
                 "eventlet", "gevent", "SQLAlchemy", "Node", "socket.io"):
        if name in v:
            lines.append(f"| {name} | {v.get(name) or '?'} |")
    lines.append("")
    return lines


def method(data):
    plan = data.get("plan", {})
    settings = data.get("papo_settings", {})
    lines = [
        "## How it was measured",
        "",
        "- **Servers**: Papo (`python app.py`) per ASYNC_MODE, eventlet and gevent, and threading once "
        "(werkzeug's development server); the reference is Node socket.io "
        f"{data.get('versions', {}).get('socket.io', '?')} with Papo's room semantics (bench/reference/), "
        "everything in memory. One server at a time, each started fresh for its round and for each idle size, "
        f"alternating in each round: {', '.join(plan.get('servers', []))}; "
        f"{plan.get('rounds')} round(s). Figures are medians over the rounds, with the range in brackets.",
        "- **Papo's settings**: its abuse limits are lifted so that they are not what is measured: "
        + ", ".join(f"`{k}={v}`" for k, v in settings.items() if k != "DATABASE_URL")
        + "; a SQLite database in a temporary directory, kept across the run's restarts with the "
          f"generator's token cache (a pool of {data.get('user_pool')} users registered once: each registration "
          "hashes a password).",
        "- **The load generator** is Node (bench/loadgen/), speaking raw Engine.IO v4 / Socket.IO v5 frames "
        "over WebSocket (a client of its own, lib/wsframes.js), Engine.IO polling and plain HTTP: one Node "
        "process takes 150-200k deliveries/s on one core, "
        "where a Python client (python-socketio) would spend more per message than the server and measure "
        f"itself. Its CPU (% of one core, highest over the repeats) stands beside each figure; {GEN_MARK} marks a "
        "figure during which it passed 90% of a core: that figure may be the generator's limit, not the server's.",
        f"- **Noise**: the machine is shared. The *load* column gives the highest 1-minute load average at the "
        f"start or end of the invocations behind a figure / the CPU (in cores) other processes took meanwhile "
        f"(/proc/stat less the server's and the generator's own). {LOAD_MARK} marks a load average above {LOAD_WARN}; "
        "the benchmark itself keeps the server and the generator busy, about 1 to 2 of that load. "
        f"An invocation during which other processes took {DISTURBED:g} core or more (half of this machine, "
        "which the benchmark needs whole) is *disturbed*: where a figure has undisturbed repeats, its median "
        "uses only those (*runs*: used / measured; ⚠ there: every repeat was disturbed).",
        "- **Server CPU** is the server process's user+system time from /proc/PID/stat over the generator's "
        "measurement window; **memory** is its VmRSS from /proc/PID/status before connecting and while the "
        "connections are held.",
        "",
    ]
    return lines


def goals_section(res, figs):
    table, size = goals(res, figs)
    lines = ["## Goals: Papo against the reference (same run)", ""]
    if not table:
        return lines + ["No reference figures in this run: no ratios.", ""]
    modes = list(table)
    lines += [f"Papo / reference, each side the median of its undisturbed rounds out of "
              f"{res.data.get('plan', {}).get('rounds')} (the *runs* columns below: used / measured; a run is "
              f"disturbed when other processes took {DISTURBED:g} core or more meanwhile)"
              + (f"; memory and broadcast at {size:,} connections." if size else "."), ""]
    lines += ["| goal | target | " + " | ".join(SERVER_NAMES[m] for m in modes) + " |",
              "|---|---|" + "---|" * len(modes)]
    for key, label, op, target in GOALS:
        if key in ("mem_per_conn", "broadcast") and size:
            label = f"{label} at {size:,}"
        cells = []
        for mode in modes:
            r, papo, base, passed, runs, at = table[mode][key]
            if r is None:
                cells.append("not measured")
                continue
            where = f" at {at:,} against {size:,}" if at else ""
            unit = {"fanout": "/s", "latency_p99": " ms", "mem_per_conn": " KB", "broadcast": " ms",
                    "capacity": ""}[key]
            mark = "**pass**" if passed else "**fail**"
            flag = " " + GEN_MARK if any(get(x, "result.generator.bound") or get(x, "result.generator_bound_any")
                                         for x in runs) else ""
            cells.append(f"{ratio_text(r)} {mark} ({fmt(papo)}{unit} vs {fmt(base)}{unit}{where}){flag}")
        lines.append(f"| {label} | {op} {target:g}x | " + " | ".join(cells) + " |")
    lines += ["", "![Papo against the reference](img/bench_goals.png)", ""]
    return lines


def server_section(res, figs):
    servers = list(figs)
    ref = figs.get("reference", {})
    lines = ["## (b) Server performance per ASYNC_MODE, (c) against the reference", ""]

    def row(server, cells, entry, gen="generator"):
        runs = entry[1]
        return (f"| {SERVER_NAMES.get(server, server)} | " + " | ".join(cells)
                + f" | {runs_cell(entry)} | {gen_text(runs, gen)} | {load_text(runs)} |")

    def table(key, cells):
        """A row per server with runs under `key`; cells(server, runs) gives its figures."""
        for s in servers:
            entry = figs[s].get(key, (None, [], []))
            if entry[1]:
                lines.append(row(s, cells(s, entry[1]), entry))

    fo = res.data.get("plan", {}).get("fanout", {})
    lines += [f"### Fan-out: one room of {fo.get('clients')} clients, {fo.get('senders')} senders each keeping at most "
              f"{fo.get('inflight')} messages in flight, {fo.get('duration')} s", "",
              *columns("server", "deliveries/s", "/ reference", "acked msg/s", "delivered to all", "server CPU",
                       "server µs per delivery", "runs", "generator", "load / others")]
    table("fanout", lambda s, runs: [
        spread([get(r, "result.deliveries_per_s") for r in runs]),
        ratio_text(safe_ratio(figs[s]["fanout"][0], ref.get("fanout", (None,))[0])),
        spread([get(r, "result.acked_per_s") for r in runs]),
        fmt(median([get(r, "result.delivery_ratio_total") for r in runs]), 4),
        spread([get(r, "result.server.cpu_pct") for r in runs], 2, "%"),
        spread([get(r, "result.server_cpu_us_per_delivery") for r in runs]),
    ])
    la = res.data.get("plan", {}).get("latency", {})
    lines += ["", f"### Latency at fixed load: {la.get('clients')} clients in {la.get('rooms')} rooms, "
              f"{la.get('rate')} messages/s each ({la.get('clients', 0) * la.get('rate', 0):,} in, "
              f"{la.get('clients', 0) * la.get('rate', 0) * la.get('clients', 1) // max(1, la.get('rooms', 1)):,} "
              f"deliveries/s), {la.get('duration')} s, open loop", "",
              *columns("server", "p50 ms", "p99 ms", "p50 / ref", "p99 / ref", "delivered", "ack p99 ms", "server CPU",
                       "runs", "generator", "load / others")]
    table("latency_p99", lambda s, runs: [
        spread([get(r, "result.latency_ms.p50") for r in runs]),
        spread([get(r, "result.latency_ms.p99") for r in runs]),
        ratio_text(safe_ratio(figs[s]["latency_p50"][0], ref.get("latency_p50", (None,))[0])),
        ratio_text(safe_ratio(figs[s]["latency_p99"][0], ref.get("latency_p99", (None,))[0])),
        fmt(median([get(r, "result.delivered_ratio") for r in runs]), 4),
        spread([get(r, "result.ack_ms.p99") for r in runs]),
        spread([get(r, "result.server.cpu_pct") for r in runs], 2, "%"),
    ])
    pe = res.data.get("plan", {}).get("persist", {})
    lines += ["", f"### Persistence: {pe.get('senders')} senders (distinct users, own rooms), "
              "one message in flight each, "
              f"{pe.get('duration')} s", "",
              *columns("server", "acked msg/s", "/ reference", "ack p50 ms", "ack p99 ms", "server CPU",
                       "server µs per message", "runs", "generator", "load / others")]
    table("persist", lambda s, runs: [
        spread([get(r, "result.acked_per_s") for r in runs]),
        ratio_text(safe_ratio(figs[s]["persist"][0], ref.get("persist", (None,))[0])),
        spread([get(r, "result.ack_ms.p50") for r in runs]),
        spread([get(r, "result.ack_ms.p99") for r in runs]),
        spread([get(r, "result.server.cpu_pct") for r in runs], 2, "%"),
        spread([get(r, "result.server_cpu_us_per_message") for r in runs]),
    ])
    for s in servers:
        if not s.endswith(MEMORY) or not figs[s].get("persist", (None, []))[1]:
            continue
        lines += ["", f"*{SERVER_NAMES.get(s, s)}* is Papo whole (its transport, python-socketio, sign-in, "
                  "joins, the service's checks, rate limits, metrics and broadcast) with its store's `queue_append` "
                  "answering at once from memory as the reference's `post` does (bench/memory_server.py): the "
                  "most any storage path could give, measured in the same rounds."]
    lines += ["", "### Idle connections: one room, held, then single broadcasts", "",
              "Each size on a fresh server. Memory per connection = (VmRSS while held - VmRSS before) / connections; "
              "broadcast = the median over 3 broadcasts of the time until every connection has it.", "",
              *columns("server", "connections", "connected", "KB per connection", "/ reference", "broadcast to all ms",
                       "/ reference", "connects/s", "server µs per connect", "runs", "generator", "load / others")]
    for size in res.idle_sizes():
        table(f"mem_per_conn@{size}", lambda s, runs, size=size: [
            f"{size:,}",
            spread([get(r, "result.connected") for r in runs], 5),
            spread([get(r, "result.server_rss_kb.per_connection_kb") for r in runs]),
            ratio_text(safe_ratio(figs[s].get(f"mem_per_conn@{size}", (None,))[0],
                                  ref.get(f"mem_per_conn@{size}", (None,))[0])),
            spread([get(r, "result.reach_all_ms_median") for r in runs]),
            ratio_text(safe_ratio(figs[s].get(f"broadcast@{size}", (None,))[0],
                                  ref.get(f"broadcast@{size}", (None,))[0])),
            spread([get(r, "result.connect_per_s") for r in runs]),
            spread([get(r, "result.server_cpu_us_per_connect") for r in runs]),
        ])
    cap = res.data.get("plan", {}).get("capacity", {})
    lines += ["", "### Capacity (the websocket shootout's method)", "",
              f"Clients join one room {cap.get('step')} at a time; at each size {cap.get('samples')} broadcasts from "
              f"random clients, {cap.get('concurrent')} at once, each timed from the send until every client has it. "
              f"Capacity = the last size whose p95 stayed within {cap.get('limit-ms')} ms "
              f"(at most {cap.get('max-clients'):,} clients).", "",
              *columns("server", "capacity clients", "/ reference", "p95 ms at the last size within",
                       "first size over", "why it stopped", "runs", "generator", "load / others")]
    def capacity_cells(s, runs):
        last_ok, over = [], []
        for r in runs:
            steps = get(r, "result.steps") or []
            ok = [x for x in steps if x.get("pass")]
            bad = [x for x in steps if not x.get("pass")]
            last_ok.append(ok[-1].get("p95_ms") if ok else None)
            over.append(bad[0]["clients"] if bad else None)
        return [spread([get(r, "result.capacity_clients") for r in runs], 5),
                ratio_text(safe_ratio(figs[s]["capacity"][0], ref.get("capacity", (None,))[0])),
                spread(last_ok), spread(over, 5),
                ", ".join(sorted({str(get(r, "result.stop_reason")) for r in runs}))]

    table("capacity", capacity_cells)
    lines += ["", "![idle connections](img/bench_idle.png)", "", "![capacity](img/bench_capacity.png)", ""]
    return lines


def latency_cost(name, runs, ref_runs):
    """Why a p99 differs at the fixed load: the CPU each side spends per delivered message."""
    papo = median([get(r, "result.server_cpu_us_per_delivery") for r in runs])
    ref = median([get(r, "result.server_cpu_us_per_delivery") for r in ref_runs])
    if not papo or not ref:
        return f"- {name}, the fixed latency load: no CPU figures to compare."
    return (f"- {name}, the fixed latency load: {fmt(papo)} µs of server CPU per delivered message against "
            f"{fmt(ref)} µs for the reference ({ratio_text(safe_ratio(papo, ref))}). Papo commits every message to "
            "the database before it broadcasts it (SQLite's group commits and checkpoints on OS threads of their "
            "own, whose Python steps take the GIL from the event loop); the reference keeps messages in memory. "
            "The busier process queues more messages behind each other, and the p99 shows it.")


def limit_sentence(name, workload, key, f):
    """What bounded one server's figure: the generator, the server's CPU, or waiting."""
    runs = f[key][1]
    cpu = median([get(r, "result.server.cpu_pct") for r in runs])
    if not runs or cpu is None:
        return None
    gen = max([get(r, "result.generator.cpu_pct") or 0 for r in runs])
    if any(get(r, "result.generator.bound") for r in runs):
        return (f"- {name}, {workload}: the generator used {gen:.0f}% of a core: the figure is at least "
                "partly the generator's limit.")
    if cpu >= 90:
        bound = "bound by the server's CPU" + (" (threads on both cores)" if cpu > 105 else ": one process, one core")
        return f"- {name}, {workload}: the server used {cpu:.0f}% of a core (the generator {gen:.0f}%): {bound}."
    if key == "latency_p99" and (f["latency_p99"][0] or 0) > 100:
        _, _, others = noise(runs)
        return (f"- {name}, {workload}: p99 {fmt(f['latency_p99'][0])} ms with the server at {cpu:.0f}% "
                "of a core: the delay is not the server's computing alone but waiting (I/O, locks, "
                "scheduling)" + (f"; other processes took up to {others:.2f} cores meanwhile" if others
                                 else "") + ".")
    return None


def connect_cost(res, server):
    """Median server µs per connection over every idle size."""
    return median([get(r, "result.server_cpu_us_per_connect") for size in res.idle_sizes()
                   for r in res.select(section="server", server=server, workload="idle", clients=size)])


def connect_sentence(res, server, name):
    connect, ref_connect = connect_cost(res, server), connect_cost(res, "reference")
    if not connect or server == "reference":
        return None
    extra = (f" against {fmt(ref_connect)} µs for the reference ({ratio_text(safe_ratio(connect, ref_connect))})"
             if ref_connect else "")
    return (f"- {name}: one connection (handshake, auth, join) costs {fmt(connect)} µs of server CPU{extra}: "
            f"{fmt(connect * 10000 / 1e6)} s of CPU for 10,000 connections.")


def failures(res):
    """The run's notes, failed invocations, refused connections and acks, a line each."""
    lines = [f"- {note}" for note in res.data.get("notes", [])]
    errors = [r for r in res.runs if r.get("error")]
    lines += [f"- failed: {r.get('server')} {r.get('label')}: {str(r.get('error'))[:200]}" for r in errors[:8]]
    connect_errors = [(r, get(r, "result.errors.connect")) for r in res.runs if get(r, "result.errors.connect")]
    for r, n in connect_errors[:6]:
        samples = "; ".join(get(r, "result.errors.connect_samples") or [])[:160]
        lines.append(f"- {r.get('server')} {r.get('label')}: {n} connections failed ({samples})")
    ack_errors = [(r, get(r, "result.errors.acks")) for r in res.runs if get(r, "result.errors.acks")]
    lines += [f"- {r.get('server')} {r.get('label')}: refused acks {acks}" for r, acks in ack_errors[:6]]
    return lines


def bottlenecks(res, figs):
    """Sentences on where each server's time went, from its CPU and the generator's."""
    lines = ["### Where the limits are", ""]
    ref_latency = figs.get("reference", {}).get("latency_p99", (None, []))[1]
    for s, f in figs.items():
        name = SERVER_NAMES.get(s, s)
        for workload, key in (("fan-out", "fanout"), ("the fixed latency load", "latency_p99"),
                              ("persistence", "persist")):
            lines.append(limit_sentence(name, workload, key, f))
        if s in ("eventlet", "gevent") and f["latency_p99"][1] and ref_latency:
            lines.append(latency_cost(name, f["latency_p99"][1], ref_latency))
        lines.append(connect_sentence(res, s, name))
    lines = [line for line in lines if line is not None] + failures(res)
    lines.append("")
    return lines


def transport_section(res):
    sizes, sweep = transport_figures(res)
    lines = ["## (a) Transport study: one chat workload, each way, growing clients", ""]
    if not sizes:
        return lines + ["Not measured in this run.", ""]
    tp = res.data.get("plan", {}).get("transport", {})
    ways = [w for w in res.data.get("ways", []) if any(k[0] == w for k in sizes)]
    clients_list = sorted({k[1] for k in sizes})
    server = next(iter(sizes.values())).get("server")
    senders = tp.get("max_senders")
    lines += [
        f"Papo ({server}), clients in rooms of 10; every client receives, "
        + (f"the first {senders:,} of them (all of them up to {senders:,} clients) each send " if senders else
           "each sends ")
        + f"{tp.get('rate')} messages/s on a fixed schedule (open loop). The window is {tp.get('duration')} s after "
        f"{tp.get('warmup')} s of warm-up"
        + (f"; from {tp['big_from']:,} clients {tp.get('big_duration')} s after {tp.get('big_warmup')} s, "
           "one repeat: connecting the clients takes most of the time"
           if tp.get("big_from") and max(clients_list) >= tp["big_from"] else "")
        + (f". From {tp['fresh_from']:,} clients each way and size runs on a fresh server (its memory per idle "
           "client is then its own, and no way inherits another's backlog)"
           if tp.get("fresh_from") and max(clients_list) >= tp["fresh_from"] else "")
        + ". Sizes: " + ", ".join(f"{c:,}" for c in tp.get("sizes", clients_list))
        + "; a way stops at the first size it does not keep up at (its limit, below). The ways: "
        + "; ".join(f"**{w}**: {WAY_NAMES.get(w, w)}" for w in ways) + ". The HTTP ways send with "
        "`POST /api/rooms/<r>/messages` on keep-alive connections; short polling asks "
        "`GET /api/rooms/<r>/messages?after=N`, long polling `GET /api/rooms/<r>/poll?after=N&timeout=25`; "
        "sse holds `GET /api/stream?rooms=<r>` open and parses its events as a browser's EventSource does.",
        "",
        "Bytes are everything written and read on the clients' sockets during the window (HTTP headers, "
        "WebSocket and Engine.IO framing, pings, requests that found nothing), per message delivered in the "
        "window; *kernel* gives the kernel's count (`ss -ti` bytes_acked / bytes_received, over the sockets "
        "open at both ends of the window) as a share of the socket counters read right after each `ss`. "
        "*Kept up*: the generator sent 97% of "
        "its schedule, 99% of the window's messages were delivered, and p99 stayed within 1 s (short polling: "
        "two intervals + 1 s). *KB / idle client*: the server's VmRSS once every client is connected and idle, "
        "less its VmRSS after the first 2% of them, per client (fresh servers only).",
        "",
        *columns("clients", "way", "p50 ms", "p99 ms", "kept up", "bytes down / msg", "bytes up / msg",
                 "kernel down, up", "requests / msg", "server µs / msg", "KB / idle client", "server CPU",
                 "generator", "load / others"),
    ]
    for clients in clients_list:
        for way in ways:
            run = sizes.get((way, clients))
            if not run:
                continue
            r = run["result"]
            wire = r.get("wire", {})
            k = wire.get("kernel") or {}
            kd, ku = kernel_shares(wire)
            kernel = (f"{kd * 100:.0f}%, {ku * 100:.0f}%" if kd is not None and ku is not None else "–")
            if k.get("sockets_changed"):
                kernel += f" ({k['sockets_changed']} sockets changed)"
            lines.append(
                f"| {clients:,} | {way} | {fmt(get(r, 'latency_ms.p50'))} | {fmt(get(r, 'latency_ms.p99'))} | "
                f"{'yes' if kept_up(r) else '**no**'} | {fmt(wire.get('bytes_down_per_delivery'))} | "
                f"{fmt(wire.get('bytes_up_per_delivery'))} | {kernel} | {fmt(wire.get('requests_per_delivery'))} | "
                f"{cpu_cell(r)} | {fmt(idle_memory(run))} | {fmt(get(r, 'server.cpu_pct'), 2, '%')} | "
                f"{gen_text([run])} | {load_text([run])} |")
    lines += ["", "![latency CDF per way](img/bench_transport_latency_cdf.png)", "",
              "![bytes per delivered message](img/bench_transport_bytes.png)", "",
              "![server CPU per delivered message and p99 against clients](img/bench_transport_scale.png)", ""]
    lines += scale_table(res)
    # the rate sweep
    sc = tp.get("sweep_clients")
    lines += [f"### Where each way stops keeping up ({sc} clients, rate raised per client)", "",
              *columns("way", "rates tried (messages/s per client: kept up?)", "kept up to",
                       "stopped keeping up at")]
    limits = sweep_limits(res)
    for way in ways:
        info = limits.get(way)
        if not info:
            continue
        tried = ", ".join(f"{rate:g}: {'yes' if ok else '**no**'}" for rate, ok, _ in info["tried"])
        upto = f"{info['ok']:g}/s each ({info['ok'] * sc:,g} msg/s in)" if info["ok"] else "none tried"
        stop = (f"{info['fail']:g}/s each ({info['fail'] * sc:,g} msg/s in)" if info["fail"]
                else "not reached" + (" (more rates skipped: time)" if info.get("cut") else ""))
        lines.append(f"| {way} | {tried} | {upto} | {stop} |")
    lines += ["", "### What the transport figures say", ""] + transport_conclusion(res) + [""]
    return lines




def limit_text(info):
    """A way's limit in words: the first size it fell behind at, or how far it was measured."""
    if info["limit"] is not None:
        return f"{info['limit']:,}"
    cut = sorted(info["not_run"])
    if cut:
        return f"not reached; {cut[0][0]:,} not run ({cut[0][1]})"
    return "not reached (the largest size run)"


def scale_table(res):
    """One row per way: how far it kept up, where it stopped and why, its figures at the largest size held."""
    limits = scale_limits(res)
    if not limits:
        return []
    sizes, _ = transport_figures(res)
    lines = ["### How far each way scales", "",
             "Each way ran at growing sizes until the first it did not keep up at: that size is its *limit*. "
             "*Held* is the largest size it kept up at; p99 and CPU beside it are at that size, memory per idle "
             "client at the largest size run on a fresh server.", "",
             *columns("way", "held", "limit", "why it stopped", "p99 ms", "server µs / msg", "KB / idle client")]
    for way, info in limits.items():
        held = info["held"]
        run = sizes.get((way, held)) if held else None
        r = run["result"] if run else {}
        lines.append(f"| {way} | {fmt(held) if held else 'none'} | {limit_text(info)} | {info['why'] or '–'} | "
                     f"{fmt(get(r, 'latency_ms.p99'))} | {cpu_cell(r) if run else '–'} | {memory_cell(info)} |")
    return lines + [""]


def memory_cell(info):
    """Memory per idle client at the largest size measured on a fresh server (before any message: a size the
    way then fell behind at counts too), with that size."""
    found = [(c, idle_memory(run)) for c, _, run in info["sizes"] if idle_memory(run) is not None]
    if not found:
        return "–"
    clients, kb = max(found)
    return f"{fmt(kb)} (at {clients:,})"


def limits_line(res):
    """One sentence quoting every way's limit."""
    limits = scale_limits(res)
    if not limits:
        return []
    parts = []
    for way, info in limits.items():
        if info["limit"] is not None:
            parts.append(f"{way} fell behind at {info['limit']:,}"
                         + (f" (held {info['held']:,})" if info["held"] else " (its smallest size)"))
        else:
            parts.append(f"{way} held every size run, up to {fmt(info['held'])}"
                         + (f" ({sorted(info['not_run'])[0][0]:,}: {sorted(info['not_run'])[0][1]})"
                            if info["not_run"] else ""))
    return ["- **Scale limits** (clients): " + "; ".join(parts) + "."]


def kept_at(info, clients):
    return any(c == clients and kept for c, kept, _ in info["sizes"])


def reach(info):
    """How far a way got, for comparing two: (largest size held, +1 when it never fell behind)."""
    return ((info["held"] or 0), 1 if info["limit"] is None else 0)


def sse_facts(sse, sizes, s, w, cpu, down):
    """The SSE-against-WebSocket figures as phrases, and the ratios of memory per idle client and of server CPU
    per connection (None when not measured)."""
    # memory per idle client is measured before any message: every size both ran at counts
    mem_at = [c for c, _, run in sse["sizes"] if idle_memory(run) and idle_memory(sizes.get(("ws", c)))]
    mem = (safe_ratio(idle_memory(sizes[("sse", max(mem_at))]), idle_memory(sizes[("ws", max(mem_at))]))
           if mem_at else None)
    facts = [f"p99 {fmt(get(s, 'latency_ms.p99'))} ms against {fmt(get(w, 'latency_ms.p99'))}"]
    conn = None
    if cpu:
        facts.append(f"{ratio_text(cpu)} WebSocket's server CPU per delivered message "
                     f"({fmt(cpu_per_delivery(s))} µs against {fmt(cpu_per_delivery(w))})")
    if down:
        facts.append(f"{ratio_text(down)} its bytes down per delivered message")
    if mem_at:
        big = max(mem_at)
        facts.append(f"{ratio_text(mem)} its memory per idle client at {big:,} clients "
                     f"({fmt(idle_memory(sizes[('sse', big)]))} KB against {fmt(idle_memory(sizes[('ws', big)]))})")
        cs = get(sizes[("sse", big)], "result.server_rss_kb.cpu_us_per_connect")
        cw = get(sizes[("ws", big)], "result.server_rss_kb.cpu_us_per_connect")
        if cs and cw:
            conn = safe_ratio(cs, cw)
            facts.append(f"{ratio_text(conn)} its server CPU per connection at {big:,} clients "
                         f"({fmt(cs)} µs against {fmt(cw)})")
    return facts, mem, conn


def sse_lines(res):
    """When SSE is the better choice than WebSocket, from the two ways' figures."""
    limits = scale_limits(res)
    if "sse" not in limits or "ws" not in limits:
        return []
    sse, ws = limits["sse"], limits["ws"]
    sizes, _ = transport_figures(res)
    both = [c for c, kept, _ in sse["sizes"] if kept and kept_at(ws, c)]
    if not both:
        return [f"- **SSE or WebSocket.** Not comparable in this run: SSE kept up at no size WebSocket kept up at "
                f"(SSE's limit {limit_text(sse)}, WebSocket's {limit_text(ws)})."]
    at = max(both)
    s, w = sizes[("sse", at)]["result"], sizes[("ws", at)]["result"]
    cpu = safe_ratio(cpu_per_delivery(s), cpu_per_delivery(w))
    down = safe_ratio(get(s, "wire.bytes_down_per_delivery"), get(w, "wire.bytes_down_per_delivery"))
    up = safe_ratio(get(s, "wire.bytes_up_per_delivery"), get(w, "wire.bytes_up_per_delivery"))
    facts, mem, conn = sse_facts(sse, sizes, s, w, cpu, down)
    out = [f"- **SSE or WebSocket.** At {at:,} clients, the largest size both kept up at, SSE had "
           + ", ".join(facts) + f". SSE's limit: {limit_text(sse)}; WebSocket's: {limit_text(ws)}."]
    costly = (cpu is not None and cpu > 1.25) or (mem is not None and mem > 1.25)
    cost = ("it cost the server about what WebSocket did" if cpu is not None and not costly else
            "its server CPU per message could not be set against WebSocket's in this run (too few clock ticks)")
    far = sse["limit"] is None or reach(sse) >= reach(ws)  # a size not run (time, open files) is no limit
    why = ("it needs nothing but HTTP: any proxy passes it, the browser's EventSource needs no client library "
           "and resumes by itself with Last-Event-ID")
    if not far:
        verdict = (f"  SSE fell behind at {limit_text(sse)} clients where WebSocket held {fmt(ws['held'])}"
                   + sends_behind(sizes.get(("sse", sse["limit"])))
                   + f": SSE is the better choice below {limit_text(sse)} clients where clients mostly receive, "
                   f"since {why}; beyond that, WebSocket.")
    elif costly and mem is not None and mem <= 1.25 and conn is not None and conn <= 1.25:
        verdict = (f"  SSE went as far as WebSocket at {ratio_text(cpu)} its server CPU per delivered message in this "
                   "load, where every message is also sent over HTTP; an idle stream cost about what an idle "
                   f"WebSocket did ({ratio_text(mem)} the memory, {ratio_text(conn)} the CPU to connect). So SSE is "
                   "the better choice where clients mostly receive (a dashboard, a backend or a shell following "
                   f"rooms, notifications) or WebSocket cannot pass, since {why}.")
    elif costly:
        verdict = ("  SSE went as far as WebSocket but at "
                   + " and ".join(x for x in (f"{ratio_text(cpu)} its server CPU per message" if cpu else "",
                                              f"{ratio_text(mem)} its memory per client" if mem and mem > 1.25
                                              else "") if x)
                   + f": the better choice only where WebSocket cannot pass, since {why}.")
    else:
        verdict = (f"  So SSE is the better choice than WebSocket where clients mostly receive (a dashboard, a "
                   f"backend or a shell following rooms, notifications), up to the {fmt(sse['held'])} clients "
                   f"measured: {cost}, and {why}.")
        if reach(sse) < reach(ws):
            verdict += f" (WebSocket was measured further: {fmt(ws['held'])} clients.)"
    out.append(verdict)
    p99s, p99w = get(s, "latency_ms.p99"), get(w, "latency_ms.p99")
    if p99s is not None and p99w is not None and p99s > max(2 * p99w, p99w + 20):
        out.append(f"  Where every message must arrive fastest, WebSocket: SSE's p99 was "
                   f"{ratio_text(safe_ratio(p99s, p99w))} WebSocket's at {at:,} clients.")
    if up and up >= 1.5:
        out.append(f"  Where clients send about as often as they receive, WebSocket: each message sent beside an SSE "
                   f"stream is a whole HTTP request ({fmt(get(s, 'wire.bytes_up_per_delivery'))} bytes up per "
                   f"delivered message against {fmt(get(w, 'wire.bytes_up_per_delivery'))}, {ratio_text(up)}).")
    return out


def sends_behind(run):
    """', its sends ... were what fell behind' when a run's HTTP sends waited most of its latency."""
    ack, lat = get(run, "result.ack_ms.p50"), get(run, "result.latency_ms.p50")
    if ack is None or lat is None or ack < 100 or ack < 0.5 * lat:
        return ""
    return (f" (its sends, HTTP POSTs, were what fell behind: answered after {fmt(ack)} ms at the median, "
            "the stream delivering them at once after)")


def polling_lines(res):
    """When no polling way is acceptable: the size and the rate past which none kept up, and their latency."""
    limits = scale_limits(res)
    polling = [w for w in limits if w in POLLING]
    if not polling:
        return []
    sizes, _ = transport_figures(res)
    tried = sorted({c for w in polling for c, _, _ in limits[w]["sizes"]})
    none_at = next((c for c in tried if not any(kept_at(limits[w], c) for w in polling)), None)
    held = {w: limits[w]["held"] for w in polling if limits[w]["held"]}
    parts = []
    if none_at is not None:
        best = ", ".join(f"{w} up to {held[w]:,}" for w in sorted(held, key=lambda x: held[x], reverse=True)) or "none"
        parts.append(f"from {none_at:,} clients on (at this load): none of them kept up there (held: {best})")
    sweep = sweep_limits(res)
    sc = res.data.get("plan", {}).get("transport", {}).get("sweep_clients")
    fails = [sweep[w]["fail"] for w in polling if w in sweep and sweep[w]["fail"] is not None]
    if fails and len(fails) == len(polling) and sc:  # every polling way fell behind in the sweep
        top = max(sweep[w]["ok"] or 0 for w in polling if w in sweep)
        parts.append(f"above {top * sc:,g} messages/s in at {sc} clients (the rate sweep: every polling way "
                     f"fell behind by {max(fails) * sc:,g})" if top else
                     f"at {min(fails) * sc:,g} messages/s in at {sc} clients (the rate sweep)")
    p99 = {}
    for w in polling:
        if held.get(w):
            p99[w] = get(sizes.get((w, held[w])), "result.latency_ms.p99")
    fastest = min((w for w in p99 if p99[w] is not None), key=lambda w: p99[w], default=None)
    if fastest:
        ref = [x for x in ("ws", "sse") if x in limits and kept_at(limits[x], held[fastest])]
        refs = ", ".join(f"{x} {fmt(get(sizes[(x, held[fastest])], 'result.latency_ms.p99'))} ms" for x in ref)
        parts.append(f"where 99% of messages must arrive sooner than {fmt(p99[fastest])} ms, the best p99 any "
                     f"polling way reached ({fastest}, at {held[fastest]:,} clients" + (f"; {refs}" if refs else "")
                     + ")")
    if not parts:
        return ["- **Polling.** Every polling way kept up at every size and rate run."]
    return ["- **When no polling way is acceptable:** " + "; ".join(parts) + ". Short polling waits half its "
            "interval on average by construction; long polling pays a whole HTTP request per delivery."]


def compare_size(sizes, ways):
    """The largest client count every way ran at (the ways stop at their limit), else the one most ran at."""
    counts: dict[int, int] = {}
    for (_, clients) in sizes:
        counts[clients] = counts.get(clients, 0) + 1
    if not counts:
        return None
    full = [c for c, n in counts.items() if n >= len(ways)]
    return max(full) if full else max(counts, key=lambda c: (counts[c], c))


def transport_conclusion(res):
    """Plain-words conclusions, each computed from the measured figures."""
    sizes, _ = transport_figures(res)
    ways = [w for w in res.data.get("ways", []) if any(k[0] == w for k in sizes)]
    clients_list = sorted({k[1] for k in sizes})
    if not clients_list:
        return []
    big = compare_size(sizes, ways)
    at = {w: sizes[(w, big)]["result"] for w in ways if (w, big) in sizes}
    p50 = {w: get(r, "latency_ms.p50") for w, r in at.items() if get(r, "latency_ms.p50") is not None}
    down = {w: get(r, "wire.bytes_down_per_delivery") for w, r in at.items() if get(r, "wire.bytes_down_per_delivery")}
    up = {w: get(r, "wire.bytes_up_per_delivery") for w, r in at.items()
          if get(r, "wire.bytes_up_per_delivery") is not None}
    cpu = {w: cpu_per_delivery(r) for w, r in at.items() if cpu_per_delivery(r)}
    out = latency_lines(at, big, p50) + bytes_lines(at, big, down, up) + crosscheck_lines(sizes)
    out += cpu_lines(sizes, ways, clients_list, big, cpu) + keeping_lines(res, sizes, ways, clients_list)
    out += limits_line(res) + sse_lines(res) + polling_lines(res)
    if down and p50:
        wins = {"latency": min(p50, key=lambda w: p50[w]), "bytes": min(down, key=lambda w: down[w] + (up.get(w) or 0))}
        if cpu and len(cpu) == len(at):  # a way whose CPU was too coarse to tell might have been the cheapest
            wins["server CPU"] = min(cpu, key=lambda w: cpu[w])
        out.append(verdict_line(big, wins))
    return out


def latency_lines(at, big, p50):
    if not p50:
        return silent_line(at)
    order = sorted(p50, key=p50.get)
    best = order[0]
    others = ", ".join(f"{w} {fmt(p50[w])} ms ({ratio_text(safe_ratio(p50[w], p50[best]))})" for w in order[1:])
    out = [f"- **Latency.** At {big:,} clients the fastest way was {best}, p50 {fmt(p50[best])} ms "
           f"(p99 {fmt(get(at[best], 'latency_ms.p99'))} ms); the others: {others}."]
    for w in order:
        if w.startswith("short-poll"):
            half = (1000 if "1s" in w else 250) / 2
            extra = p50[w] - half
            out.append(f"  {w}: of its p50 of {fmt(p50[w])} ms, about {half:g} ms (half the interval) is the "
                       "wait for the next poll, by construction"
                       + (f"; the other {fmt(extra)} ms is the server's delay." if extra > 0.2 * half else "."))
    return out + silent_line(at)


def silent_line(at):
    silent = [w for w in at if not get(at[w], "latency_ms.count")]
    if not silent:
        return []
    older = ", ".join(fmt(get(at[w], "deliveries_per_s")) for w in silent)
    return [f"  {', '.join(silent)} delivered none of the window's messages before the drain ended "
            f"(meanwhile {older} deliveries/s of older messages): the server was that far behind."]


def bytes_lines(at, big, down, up):
    if not down:
        return []
    order = sorted(down, key=lambda w: down[w] + (up.get(w) or 0))
    best = order[0]
    tot = {w: down[w] + (up.get(w) or 0) for w in order}
    out = [f"- **Bytes.** Per delivered message at {big:,} clients, {best} moved {fmt(down[best])} bytes down "
           f"and {fmt(up.get(best))} up; "
           + "; ".join(f"{w} {fmt(down[w])} down and {fmt(up.get(w))} up "
                       f"({ratio_text(safe_ratio(tot[w], tot[best]))} in all)" for w in order[1:]) + "."]
    reqs = {w: get(r, "wire.requests_per_delivery") for w, r in at.items()}
    many = [w for w in at if (reqs.get(w) or 0) > 0]
    if many:
        out.append("  Every HTTP request and answer carries its own headers: requests per delivered message were "
                   + ", ".join(f"{w} {fmt(reqs[w])}" for w in many)
                   + (f", against {fmt(reqs.get('ws'))} for WebSocket, whose frames share one connection."
                      if "ws" in reqs else "."))
    worst = max(down, key=down.get)
    if worst.startswith("short-poll"):
        out.append(f"  {worst} costs most because most of its requests find nothing new and still pay a full "
                   "request and answer.")
    return out


def kernel_shares(wire):
    """The kernel's byte counts as shares of the generator's socket counters (down, up), over the kernel's
    own window where the run has the counters for it, else over the measurement window."""
    k = wire.get("kernel") or {}
    down = k.get("counters_down", wire.get("bytes_down"))
    up = k.get("counters_up", wire.get("bytes_up"))
    return safe_ratio(k.get("bytes_down"), down), safe_ratio(k.get("bytes_up"), up)


def crosscheck_lines(sizes):
    checks = []
    for run in sizes.values():
        wire = get(run, "result.wire") or {}
        k = wire.get("kernel") or {}
        r = None if k.get("sockets_changed") else kernel_shares(wire)[0]
        if r:
            checks.append(r)
    if not checks:
        return []
    return [f"- **Cross-check.** Where no socket opened or closed during the window, the kernel's byte counts "
            f"were {min(checks) * 100:.1f}% to {max(checks) * 100:.1f}% of the generator's socket counters "
            "(the difference is what was in flight at the edges of the window: counted by the kernel, "
            "not yet by the program, or the reverse)."]


def cpu_lines(sizes, ways, clients_list, big, cpu):
    if not cpu:
        return []
    order = sorted(cpu, key=cpu.get)
    best = order[0]
    out = [f"- **Server CPU.** At {big:,} clients Papo spent {fmt(cpu[best])} µs of CPU per delivered "
           f"message over {best}; " + ", ".join(
               f"{w} {fmt(cpu[w])} µs ({ratio_text(safe_ratio(cpu[w], cpu[best]))})" for w in order[1:]) + "."]
    trend = []
    for w in ways:
        pts = [(c, cpu_per_delivery(get(sizes.get((w, c)), "result"))) for c in clients_list]
        pts = [p for p in pts if p[1]]
        if len(pts) >= 2:
            trend.append(f"{w} {fmt(pts[0][1])} µs at {pts[0][0]:,} → {fmt(pts[-1][1])} µs at {pts[-1][0]:,}")
    if trend:
        out.append("  Against the number of clients, server CPU per delivered message went: " + "; ".join(trend) + ".")
    return out


def keeping_lines(res, sizes, ways, clients_list):
    out = []
    for c in clients_list:
        kept = [w for w in ways if (w, c) in sizes and kept_up(sizes[(w, c)]["result"])]
        lost = [w for w in ways if (w, c) in sizes and w not in kept]
        if lost:
            out.append(f"- **Keeping up.** At {c:,} clients {', '.join(lost)} fell behind "
                       f"(kept up: {', '.join(kept) or 'none'}).")
    limits = sweep_limits(res)
    sc = res.data.get("plan", {}).get("transport", {}).get("sweep_clients")
    if limits:
        out.append(f"- **Rate sweep** ({sc} clients, rooms of 10): "
                   + "; ".join(p for p in (sweep_part(w, info, sc) for w, info in limits.items()) if p) + ".")
    return out


def sweep_part(way, info, sc):
    if info["fail"]:
        return (f"{way} stopped keeping up at {info['fail'] * sc:,g} messages/s in"
                + (f" (kept up at {info['ok'] * sc:,g})" if info["ok"] else ""))
    if info["ok"] and info.get("cut"):
        return f"{way} kept up at {info['ok'] * sc:,g} messages/s in (higher rates not tried: time)"
    if info["ok"]:
        return f"{way} kept up at every rate tried, up to {info['ok'] * sc:,g} messages/s in"
    return None


def verdict_line(big, wins):
    winners = set(wins.values())
    if len(winners) == 1:
        w = winners.pop()
        measures = {"latency": "latency", "bytes": "bytes on the wire", "server CPU": "server CPU per message"}
        named = [measures[k] for k in wins]
        return (f"- **In short:** on this machine {WAY_NAMES.get(w, w)} was the "
                + ("cheapest and fastest" if "server CPU" in wins else "fastest and leanest") + f" way at "
                f"{big:,} clients on every measure compared: {', '.join(named[:-1])} and {named[-1]}.")
    return ("- **In short:** at " + f"{big:,} clients the best way differed by measure: "
            + ", ".join(f"{k}: {v}" for k, v in wins.items()) + ".")


def baseline_section(data, baseline):
    lines = ["## Before and after", ""]
    if not baseline:
        return lines + ["No bench/baseline.json: the first full run keeps its results there.", ""]
    if baseline.get("started") == data.get("started"):
        return lines + [f"This run is the baseline (bench/baseline.json, {baseline.get('started_local')}): later runs "
                        "compare themselves with it here.", ""]
    before, after = summarize(baseline), summarize(data)
    lines += [f"Baseline: bench/baseline.json, a {baseline.get('mode')} run of {baseline.get('started_local')} "
              f"(commit {baseline.get('commit')}); now: this run."
              + (" This run is a quick one: its windows are shorter and it has one repeat."
                 if data.get("mode") == "quick" else ""), "",
              "| figure | baseline | now | change |", "|---|---|---|---|"]
    for key, (label, value, unit, better) in after.items():
        if key not in before:
            continue
        old = before[key][1]
        if old is None and value is None:
            continue
        change = ""
        if old and value is not None:
            factor = value / old
            improved = factor > 1 if better == "higher" else factor < 1
            change = f"{ratio_text(factor)} ({'better' if improved else 'worse' if factor != 1 else 'same'})"
        lines.append(f"| {label} | {fmt(old)} {unit} | {fmt(value)} {unit} | {change} |")
    lines.append("")
    return lines


def skipped_section(data):
    skipped = data.get("skipped", [])
    if not skipped:
        return []
    lines = ["## Not measured in this run", ""]
    lines += [f"- {s['what']}: {s['why']}" for s in skipped]
    return lines + [""]


def noise_summary(res):
    runs = [r for r in res.runs if r.get("section") != "setup"]
    high = [r for r in runs if max(r.get("loadavg_start") or 0, r.get("loadavg_end") or 0) > LOAD_WARN]
    others = [r.get("others_cpu_cores") for r in runs if r.get("others_cpu_cores") is not None]
    if not runs:
        return []
    lines = []
    if high:
        top = max(max(r["loadavg_start"], r["loadavg_end"]) for r in high)
        text = (f"> {LOAD_MARK} **Load average above {LOAD_WARN}** around {len(high)} of {len(runs)} invocations "
                f"(highest {top:.1f}). ")
        if others:
            calm = statistics.median(others) < 0.25
            hit = sum(1 for r in runs if disturbed(r))
            text += (f"Other processes took {statistics.median(others):.2f} cores in the median invocation and up to "
                     f"{max(others):.2f}; {hit} invocation(s) were disturbed (other processes at {DISTURBED:g} core "
                     "or more). ")
            text += ("The load average counts the benchmark's own server and generator too (and every thread of "
                     "the threading server): by the CPU other processes took, this run was little disturbed."
                     if calm else
                     "The machine was shared with other work: compare the ratios measured within this run, not "
                     "absolute figures across runs.")
        lines += [text, ""]
    return lines


def render(data, baseline=None, img_dir=IMG, doc=DOC):
    res = Results(data)
    figs = server_figures(res)
    plots(res, figs, img_dir, extra=[
        ("latency_disk", lambda plt, d: draw.latency_disk(plt, latency_disk_figures(res), d)),
        ("scaling", lambda plt, d: draw.scaling(plt, scaling_figures(res), d))])
    lines = header(data) + noise_summary(res) + goals_section(res, figs) + report_stress.sections(res)
    lines += transport_section(res) + server_section(res, figs) + bottlenecks(res, figs)
    lines += baseline_section(data, baseline)
    lines += skipped_section(data) + method(data)
    text = "\n".join(lines).rstrip() + "\n"
    if img_dir.resolve() != (doc.parent / "img").resolve():
        text = text.replace("](img/", f"]({rel(img_dir, doc.parent)}/")
    return text


def readme_block(res):
    """README.md's part of the report: each way's scale limit and the plain-words conclusion on SSE and polling."""
    lines = scale_table(res)
    if not lines:
        return []
    started = res.data.get("started_local") or res.data.get("started")
    lines = [line.replace("### How far each way scales", f"How far each way scaled in the {res.data.get('mode')} "
                          f"run of {started} ([docs/benchmarks.md](docs/benchmarks.md#how-far-each-way-scales)):")
             for line in lines]
    return lines + sse_lines(res) + polling_lines(res) + limits_line(res)


def update_readme(res, readme=README):
    """Replace what stands between README.md's markers with readme_block; nothing when they are missing."""
    try:
        text = readme.read_text()
    except OSError:
        return False
    start, end = text.find(README_START), text.find(README_END)
    block = readme_block(res)
    if start < 0 or end < start or not block:
        return False
    readme.write_text(text[:start + len(README_START)] + "\n" + "\n".join(block).rstrip() + "\n" + text[end:])
    return True


def write(data, baseline=None, doc=DOC, img_dir=IMG):
    text = render(data, baseline, img_dir, doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    if doc.resolve() == DOC.resolve():  # the committed report: README.md's benchmark section follows it
        update_readme(Results(data))
    return doc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", default=str(ROOT / "bench" / "results" / "latest.json"))
    parser.add_argument("--baseline", default=str(ROOT / "bench" / "baseline.json"))
    parser.add_argument("--out", default=str(DOC))
    parser.add_argument("--img", default=str(IMG))
    args = parser.parse_args(argv)
    data = json.loads(Path(args.results).read_text())
    try:
        baseline = json.loads(Path(args.baseline).read_text())
    except (OSError, ValueError):
        baseline = None
    doc = write(data, baseline, Path(args.out), Path(args.img))
    print(f"wrote {doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
