"""The report's sections on the storage and scale-out suites: their goals, latency with the disk
shared, the reconnect storm, scaling over processes, and where Papo's time went (py-spy)."""
from figures import (
    SERVER_NAMES,
    behind,
    get,
    latency_disk_figures,
    machine_ceiling,
    measured_mode,
    persist_floor,
    profile_runs,
    safe_ratio,
    scaling_figures,
    storm_figures,
    stress_goals,
)
from text import columns, fmt, ratio_text, spread

VERDICT = {True: "**met**", False: "**not met**", None: "not measured"}


def sections(res):
    """Every section the results have data for, as markdown lines."""
    if not any(r.get("section") in ("latency-disk", "storm", "scaling", "profile") for r in res.runs):
        return []
    return (goals_section(res) + latency_disk_section(res) + storm_section(res) + scaling_section(res)
            + profile_section(res))


def goals_section(res):
    lines = ["## Goals of the storage and scale-out work (same run)", "",
             f"Ratios of medians measured in this run ({SERVER_NAMES[measured_mode(res)]} against the Node "
             "reference, or Papo against itself); each goal is met or not, as measured. A latency goal is not "
             "met when Papo fell behind (less than 99% of the window's messages delivered before the drain "
             "ended), whatever the ratio; a storm's goal is not met when any client missed a message.", "",
             *columns("goal", "target", "ratio", "Papo", "compared with", "verdict")]
    for _key, label, op, target, ratio, papo, other, passed in stress_goals(res):
        lines.append(f"| {label} | {op} {target:g}x | {ratio_text(ratio)} | {fmt(papo)} | {fmt(other)} | "
                     f"{VERDICT[passed]} |")
    verdicts = [g[7] for g in stress_goals(res)]
    missed = [g[1] for g in stress_goals(res) if g[7] is False]
    unmeasured = verdicts.count(None)
    lines += ["", f"In plain words: {verdicts.count(True)} of {len(verdicts) - unmeasured} measured goals are met"
              + (f"; not met: {'; '.join(missed)}" if missed else "")
              + (f"; {unmeasured} not measured in this run." if unmeasured else "."), ""]
    return lines + floor_text(res)


def floor_text(res):
    """What the persistence goal is measured against: Papo with its messages in memory, when it ran."""
    floor = persist_floor(res)
    if floor is None:
        return []
    papo, memory, reference = floor
    share = safe_ratio(papo, memory)
    return [f"Persistence beside its floor: Papo with its messages in memory (bench/memory_server.py: Papo "
            "whole, its store's queue_append answering at once as the reference's `post` does, nothing "
            f"written) acked {fmt(memory)} messages/s, {ratio_text(safe_ratio(memory, reference))} the "
            f"reference's {fmt(reference)}; Papo, durable, {fmt(papo)}, "
            f"{'–' if share is None else f'{share:.0%}'} of its floor. No storage path "
            "can make Papo faster than its floor, so the persistence goal is out of reach on this machine "
            "whatever the store does; what storage costs a message is the gap to the floor.", ""]


def latency_disk_section(res):
    figs = latency_disk_figures(res)
    if not figs:
        return []
    plan = res.data.get("plan", {}).get("latency_disk", {})
    load = plan.get("load", {})
    fs = next((r.get("database_fs") for r in res.select(section="latency-disk") if r.get("database_fs")), None)
    where = f"{fs['type']} at {fs['mount']}" if fs else "the run's temporary directory"
    lines = ["## Latency with the database on disk, quiet and beside a disk neighbour", "",
             f"{load.get('clients')} clients in {load.get('rooms')} rooms, {load.get('rate')} messages/s each, "
             f"open loop, {load.get('duration')} s windows, {plan.get('rounds')} round(s); Papo's SQLite database "
             f"on {where} (not tmpfs). The neighbour is a process the benchmark starts beside the server, writing "
             f"{fmt((plan.get('neighbour') or {}).get('mb-per-s'))} MB/s to a file on the same disk and fsyncing "
             "it every MB; it is stopped by its PID after the window. *Server wrote to disk*: what the server "
             "had the kernel write to storage during the window (`write_bytes` of /proc/PID/io: the WAL and its "
             "checkpoints), per message sent.", "",
             *columns("server", "disk", "p50 ms", "p99 ms", "max ms", "p99 / reference", "max / reference",
                      "server wrote to disk, KB per message", "runs", "neighbour wrote, fsync p50 / max ms")]
    ref = figs.get("reference", {})
    for server, by_disk in figs.items():
        for disk in ("quiet", "neighbour"):
            f = by_disk.get(disk)
            if not f:
                continue
            runs = f["p99"][2]
            r = ref.get(disk, {})
            mark = " (fell behind)" if behind(runs) else ""
            lines.append(f"| {SERVER_NAMES.get(server, server)} | {disk} | {spread(_vals(runs, 'p50'))} | "
                         f"{spread(_vals(runs, 'p99'))}{mark} | {spread(_vals(runs, 'max'))} | "
                         f"{ratio_text(_ratio(f, r, 'p99'))} | {ratio_text(_ratio(f, r, 'max'))} | "
                         f"{spread([get(run, 'result.server_disk_kb_per_message') for run in runs])} | "
                         f"{len(f['p99'][1])}/{len(runs)} | {neighbour_text(runs)} |")
    return lines + ["", "![latency with the disk shared](img/bench_latency_disk.png)", ""]


def _vals(runs, q):
    return [get(r, f"result.latency_ms.{q}") if get(r, "result.latency_ms.count")
            else get(r, f"result.latency_arrivals_ms.{q}") for r in runs]


def _ratio(f, ref, q):
    a, b = f.get(q, (None,))[0], ref.get(q, (None,))[0]
    return None if a is None or not b else a / b


def neighbour_text(runs):
    done = [r["neighbour"] for r in runs if r.get("neighbour")]
    if not done:
        return "–"
    mb = sum(n.get("mb_written") or 0 for n in done) / len(done)
    p50 = [n.get("fsync_ms_p50") for n in done]
    top = max((n.get("fsync_ms_max") or 0) for n in done)
    return f"{fmt(mb)} MB, {spread(p50)} / {fmt(top)}"


def _each(f, name):
    return [get(r, f"result.{name}") for r in f["connect_s"][2]]


def storm_section(res):
    figs = storm_figures(res)
    if not figs:
        return []
    p = res.data.get("plan", {}).get("storm", {})
    window = p.get("drain_seconds", 3)
    closing = f"over {window:g} s (DRAIN_SECONDS)" if window else "all at once (DRAIN_SECONDS 0)"
    lines = ["## Reconnect storm", "",
             f"{p.get('clients'):,} clients in {p.get('rooms')} rooms over WebSocket, one message per second in "
             "each room meanwhile. The reference: the time to connect them all (handshake, auth, then a `join` "
             "event, as socket.io has it) and its CPU per connection. Papo: the same connect phase, its clients "
             "asking for their room in the handshake (`auth.join`, answered by a `joined` event, as Papo's "
             "browser client does), then the server is stopped under the clients "
             f"(SIGTERM, closing its connections {closing}, the drain bounded at "
             f"{p.get('drain_limit')} s; or kill -9) and started again on the same "
             "port and database; the clients come back with the browser client's backoff (socket.io-client: "
             "500 ms doubling to 4 s, ±50%) and re-join with `since`; a run recovers when every client has "
             "re-joined, and then every client must hold every seq of its room, none missing, none changed "
             "(a message acked before the restart and gone after it would show as changed). Papo opens its port "
             "before it loads, so *new server answering* is when it answered the benchmark's health check, which "
             "waits in the port's queue with the clients that came back meanwhile; *server µs per reconnect* is "
             "the new process's CPU until the check ended, less a quiet start's, per client.", "",
             *columns("server", "phase", "connect s", "server µs per connection", "back after the signal s",
                      "back after the first drop s", "old server exited s", "new server answering s",
                      "server µs per reconnect", "missing / changed", "runs")]
    papo = SERVER_NAMES[measured_mode(res)]
    for who in ("reference", "papo"):
        f = figs.get(f"connect/{who}")
        if f:
            lines.append(f"| {SERVER_NAMES['reference'] if who == 'reference' else papo} | connect | "
                         f"{spread(_each(f, 'connect_s'))} | {spread(_each(f, 'server_cpu_us_per_connect'))} | "
                         "| | | | | | "
                         f"{len(f['connect_s'][1])}/{len(f['connect_s'][2])} |")
    for how, name in (("sigterm", "restart: SIGTERM"), ("kill9", "restart: kill -9")):
        f = figs.get(how)
        if not f:
            continue
        forced = f" ({f['forced']} drain(s) past the limit)" if f["forced"] else ""
        lines.append(f"| {papo} | {name} | | | {fmt(f['since_signal_s'][0])} | "
                     f"{fmt(f['recovered_s'][0])}{'' if f['all_back'] else ' (not all back)'} | "
                     f"{fmt(f['exit_s'][0])}{forced} | {fmt(f['start_s'][0])} | {fmt(f['reconnect_cpu_us'][0])} | "
                     f"{f['missing']} / {f['changed']} | {len(f['runs'])} |")
    return lines + [""]


def scaling_section(res):
    figs = scaling_figures(res)
    if not figs:
        return []
    p = res.data.get("plan", {}).get("scaling", {})
    fo, la = p.get("fanout", {}), p.get("latency", {})
    cores = res.data.get("machine", {}).get("cores")
    one = figs.get((measured_mode(res), 1, False), {}).get("fanout", (None,))[0]
    ref_one = figs.get(("reference", 1, True), {}).get("fanout", (None,))[0]
    lines = ["## Scaling over processes", "",
             f"Fan-out in one room of {fo.get('clients')} ({fo.get('senders')} senders), and the latency load "
             f"({la.get('clients')} clients in {la.get('rooms')} rooms at {la.get('rate')} messages/s each: "
             f"{(la.get('clients') or 0) * (la.get('rate') or 0):,} messages/s in); clients spread evenly over "
             "the processes (a room's members alternate between them), so every message crosses. Papo's "
             "processes share one PostgreSQL database (created for the run, dropped after) and, with Redis, a "
             "redis-server the benchmark starts for itself; the reference's share socket.io's Redis adapter. "
             f"**On this machine's {cores} cores the processes, the load generator and Redis share the CPUs**: "
             "figures with more processes than cores are lower bounds of what the processes would do alone. "
             f"*Cores busy* is the machine's CPU during the fan-out runs, of {cores}: the servers' (in brackets), "
             "the generator's and every other process's (Redis, PostgreSQL) together.", "",
             *columns("server", "processes", "Redis", "fan-out deliveries/s", "/ Papo 1 process without Redis",
                      "/ its 1 process", "cores busy (servers)", "p50 ms", "p99 ms", "delivered", "runs")]
    for (kind, n, redis), f in figs.items():
        base = ref_one if kind == "reference" else one
        runs = f["p99"][2]
        mark = " (fell behind)" if behind(runs) else ""
        lines.append(f"| {SERVER_NAMES.get(kind, kind)} | {n} | {'yes' if redis else 'no'} | "
                     f"{spread([get(r, 'result.deliveries_per_s') for r in f['fanout'][2]])} | "
                     f"{ratio_text(_div(f['fanout'][0], one))} | {ratio_text(_div(f['fanout'][0], base))} | "
                     f"{fmt(f['busy'][0])} ({fmt(f['servers_busy'][0])}) | "
                     f"{fmt(f['p50'][0])} | {fmt(f['p99'][0])}{mark} | {fmt(f['delivered'][0], 4)} | "
                     f"{len(f['fanout'][1])}/{len(f['fanout'][2])} |")
    return lines + _ceiling(figs, cores, measured_mode(res)) + [
        "", "![scaling over processes](img/bench_scaling.png)", ""]


def _ceiling(figs, cores, papo):
    c = machine_ceiling(figs, cores, papo)
    if c is None:
        return []
    return ["", f"What {cores} cores allow: with two Papo processes the machine spent {fmt(c['us_per_delivery'])} µs "
            "of CPU per delivery (the servers, the generator, Redis and PostgreSQL together: cores busy over "
            f"deliveries/s), so its {cores} cores carry at most {c['most_per_s']:,.0f} deliveries/s at that cost, "
            f"{ratio_text(c['most_ratio'])} one process without Redis; {c['goal']:g}x would take "
            f"{fmt(c['cores_for_goal'])} cores."]


def _div(a, b):
    return None if a is None or not b else a / b


def profile_section(res):
    found = profile_runs(res)
    if not found:
        return []
    lines = ["## Where Papo's time goes (py-spy)", "",
             "py-spy sampled the Papo process (`--nonblocking`, 100 Hz) during the runs below. It leaves out "
             "threads it sees idle, but not every wait looks idle to it: `Hub.do_poll` (the event loop in "
             "epoll, waiting for sockets) and `ThreadLane._next` (a database thread waiting for work) are "
             "waits, not work; server CPU per message or connection is in the tables above. *Self*: the "
             "function on top of the stack; *within*: Papo's functions and everything they call.", ""]
    for label, _server, summary in found:
        lines += [f"### {label} ({summary['samples']:,} samples)", "",
                  *columns("self", "share", "within (Papo's code)", "share")]
        own, within = summary.get("self", []), summary.get("papo_inclusive", [])
        for i in range(max(len(own), len(within))):
            a = own[i] if i < len(own) else ["", None]
            b = within[i] if i < len(within) else ["", None]
            lines.append(f"| `{a[0]}` | {pct(a[1])} | `{b[0]}` | {pct(b[1])} |")
        mods = ", ".join(f"{name} {pct(share)}" for name, share in summary.get("modules", []))
        lines += ["", f"By where the top frame's code lives: {mods}.", ""]
    return lines


def pct(share):
    return "" if share is None else f"{share * 100:.1f}%"
