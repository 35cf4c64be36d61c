"""The report's plots: docs/img/bench_*.png from the figures (matplotlib, Agg), one function a plot."""
from figures import (
    GOALS,
    SERVER_NAMES,
    cpu_per_delivery,
    cpu_upper_bound,
    get,
    goals,
    kept_up,
    transport_figures,
)


def plots(res, figs, img_dir, extra=()):
    """Every plot the results allow, into img_dir (old bench_*.png removed first): {name: path}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    for old in img_dir.glob("bench_*.png"):
        old.unlink()
    made = {}
    sizes, _ = transport_figures(res)
    if sizes:
        ways = [w for w in res.data.get("ways", []) if any(k[0] == w for k in sizes)]
        clients_list = sorted({k[1] for k in sizes})
        colors = dict(zip(res.data.get("ways", []), plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
        made["cdf"] = transport_cdf(plt, sizes, ways, clients_list, colors, img_dir)
        made["bytes"] = transport_bytes(plt, sizes, ways, clients_list, img_dir)
        made["scale"] = transport_scale(plt, sizes, ways, clients_list, colors, img_dir)
    table, size = goals(res, figs)
    if table:
        made["ratios"] = goal_ratios(plt, table, size, img_dir)
    if res.idle_sizes():
        made["idle"] = idle(plt, figs, res.idle_sizes(), img_dir)
    cap_runs = {s: res.select(section="server", server=s, workload="capacity") for s in figs}
    if any(cap_runs.values()):
        made["capacity"] = capacity(plt, cap_runs, img_dir)
    for name, draw in extra:
        path = draw(plt, img_dir)
        if path:
            made[name] = path
    return made


def save(fig, path, plt):
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def transport_cdf(plt, sizes, ways, clients_list, colors, img_dir):
    """Latency CDF per way, one panel per client count."""
    fig, axes = plt.subplots(1, len(clients_list), figsize=(3.4 * len(clients_list) + 0.8, 3.6), squeeze=False,
                             sharey=True)
    for ax, clients in zip(axes[0], clients_list, strict=True):
        for way in ways:
            cdf = get(sizes.get((way, clients)), "result.latency_ms.cdf")
            if cdf:
                xs = [max(x, 0.01) for x in cdf]
                ax.plot(xs, [i / 100 for i in range(len(xs))], label=way, color=colors.get(way))
        ax.set_xscale("log")
        ax.set_title(f"{clients:,} clients")
        ax.set_xlabel("end-to-end latency (ms, log)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("fraction of deliveries")
    if axes[0][-1].get_legend_handles_labels()[0]:
        axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Transport study: latency CDF per way")
    fig.tight_layout()
    return save(fig, img_dir / "bench_transport_latency_cdf.png", plt)


def transport_bytes(plt, sizes, ways, clients_list, img_dir):
    """Bytes per delivered message, down and up, per way and client count."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    width = 0.8 / max(1, len(clients_list))
    for ax, key, title in ((axes[0], "bytes_down_per_delivery", "server to clients"),
                           (axes[1], "bytes_up_per_delivery", "clients to server")):
        for j, clients in enumerate(clients_list):
            vals = [get(sizes.get((w, clients)), f"result.wire.{key}") or 0 for w in ways]
            ax.bar([i + j * width for i in range(len(ways))], vals, width, label=f"{clients:,} clients")
        ax.set_xticks([i + width * (len(clients_list) - 1) / 2 for i in range(len(ways))])
        ax.set_xticklabels(ways, rotation=20, fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"bytes per delivered message, {title}")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("bytes (headers and frames, log)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return save(fig, img_dir / "bench_transport_bytes.png", plt)


def transport_scale(plt, sizes, ways, clients_list, colors, img_dir):
    """Server CPU per delivered message and p99 against clients, one line per way (log-log); the size a way
    stopped keeping up at as an open marker, a CPU figure known only as an upper bound as a triangle."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    bounded = behind = False
    for way in ways:
        runs = [(c, get(sizes.get((way, c)), "result")) for c in clients_list]
        runs = [(c, r) for c, r in runs if r]
        color = colors.get(way)
        for ax, value in ((axes[0], cpu_per_delivery), (axes[1], lambda r: get(r, "latency_ms.p99"))):
            pts = [(c, value(r)) for c, r in runs if value(r)]  # the limit's point too: the line runs into it
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=way, color=color)
            for c, r in runs:
                if not kept_up(r) and value(r):
                    ax.plot([c], [value(r)], marker="X", fillstyle="none", ls="none", ms=9, color=color)
                    behind = True
        for c, r in runs:
            bound = cpu_upper_bound(r) if cpu_per_delivery(r) is None else None
            if bound is not None:
                axes[0].plot([c], [bound], marker="v", fillstyle="none", ls="none", color=color)
                bounded = True
    if behind:
        axes[1].plot([], [], marker="X", fillstyle="none", ls="none", ms=9, color="gray",
                     label="fell behind (the way's limit)")
    if bounded:
        axes[1].plot([], [], marker="v", fillstyle="none", ls="none", color="gray", label="CPU: upper bound")
    axes[0].set_ylabel("server CPU µs per delivered message (log)")
    axes[0].set_title("server CPU per delivered message")
    axes[1].set_ylabel("p99 end-to-end latency, ms (log)")
    axes[1].set_title("p99 latency")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("clients (log)")
        ax.grid(True, which="both", alpha=0.3)
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=8)
    fig.suptitle("Transport study: each way against clients")
    fig.tight_layout()
    return save(fig, img_dir / "bench_transport_scale.png", plt)


def goal_ratios(plt, table, size, img_dir):
    """Papo / reference against each goal's target, per mode."""
    fig, ax = plt.subplots(figsize=(8, 4))
    modes = list(table)
    width = 0.8 / max(1, len(modes))
    every = [table[m][g[0]][0] for m in modes for g in GOALS if table[m][g[0]][0]]
    low = min([0.5] + [v / 1.6 for v in every])
    high = max([3.0] + [v * 1.6 for v in every])
    for j, mode in enumerate(modes):
        for i, (key, _label, _op, _target) in enumerate(GOALS):
            value, passed = table[mode][key][0], table[mode][key][3]
            if not value:
                continue
            x = i + j * width
            ax.bar(x, value - low, width, bottom=low, color=f"C{j}", label=SERVER_NAMES[mode] if i == 0 else None)
            ax.annotate("pass" if passed else "fail", (x, value), fontsize=7, ha="center",
                        textcoords="offset points", xytext=(0, 2), color="green" if passed else "red")
    for i, (_key, _label, op, target) in enumerate(GOALS):
        ax.plot([i - width / 2, i + width * (len(modes) - 0.5)], [target, target], color="black", lw=1.5)
        ax.annotate(f"goal {op} {target:g}", (i + width * (len(modes) - 0.5), target), fontsize=7,
                    textcoords="offset points", xytext=(2, -3))
    ax.set_ylim(low, high)
    ax.set_xticks([i + width * (len(modes) - 1) / 2 for i in range(len(GOALS))])
    labels = ["fan-out", "p99 latency", f"memory/conn\nat {size:,}" if size else "memory/conn",
              f"broadcast\nto {size:,}" if size else "broadcast", "capacity"]
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("Papo / Node reference (log)")
    ax.set_title("Papo against the Node socket.io reference (same run, medians)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, img_dir / "bench_goals.png", plt)


def idle(plt, figs, sizes, img_dir):
    """Memory per idle connection and one broadcast's time, against connections."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for server, f in figs.items():
        pts = [(s, f.get(f"mem_per_conn@{s}", (None,))[0], f.get(f"broadcast@{s}", (None,))[0]) for s in sizes]
        mem = [(s, m) for s, m, _ in pts if m is not None]
        bc = [(s, b) for s, _, b in pts if b is not None]
        if mem:
            axes[0].plot(*zip(*mem, strict=True), marker="o", label=SERVER_NAMES.get(server, server))
        if bc:
            axes[1].plot(*zip(*bc, strict=True), marker="o", label=SERVER_NAMES.get(server, server))
    axes[0].set_title("server memory per idle connection")
    axes[0].set_ylabel("KB (VmRSS held - before) / connections")
    axes[1].set_title("one broadcast reaching every connection")
    axes[1].set_ylabel("ms")
    for ax in axes:
        ax.set_xlabel("connections")
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return save(fig, img_dir / "bench_idle.png", plt)


def capacity(plt, cap_runs, img_dir):
    """The broadcast round trip's p95 against clients, one line per run."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for n, (server, runs) in enumerate(cap_runs.items()):
        for k, run in enumerate(runs):
            steps = get(run, "result.steps") or []
            pts = [(s["clients"], s.get("p95_ms") if s.get("p95_ms") is not None else get(s, "rtt_all_ms.max"))
                   for s in steps]
            pts = [p for p in pts if p[1] is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker=".", alpha=0.8, color=f"C{n}",
                        label=SERVER_NAMES.get(server, server) if k == 0 else None)
    ax.axhline(250, color="black", lw=1, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("clients in the room")
    ax.set_ylabel("p95 broadcast round trip (ms, log)")
    ax.set_title("Capacity: 4 broadcasts at once, limit 250 ms")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, img_dir / "bench_capacity.png", plt)


def latency_disk(plt, figs, img_dir):
    """p50, p99 and the maximum per server, quiet and beside the disk neighbour (log scale)."""
    if not figs:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    servers = list(figs)
    width = 0.8 / max(1, len(servers))
    for ax, disk in zip(axes, ("quiet", "neighbour"), strict=True):
        for j, server in enumerate(servers):
            f = figs[server].get(disk, {})
            vals = [max((f.get(q) or (None,))[0] or 0, 0.01) for q in ("p50", "p99", "max")]
            ax.bar([i + j * width for i in range(3)], vals, width, label=SERVER_NAMES.get(server, server))
        ax.set_xticks([i + width * (len(servers) - 1) / 2 for i in range(3)])
        ax.set_xticklabels(["p50", "p99", "max"])
        ax.set_yscale("log")
        ax.set_title(f"{'quiet disk' if disk == 'quiet' else 'beside a disk neighbour'}")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("end-to-end latency (ms, log)")
    axes[1].legend(fontsize=8)
    fig.suptitle("Latency at fixed load, database on the disk")
    fig.tight_layout()
    return save(fig, img_dir / "bench_latency_disk.png", plt)


def scaling(plt, figs, img_dir):
    """Fan-out and p99 against processes, Papo (with and without Redis) and the reference."""
    if not figs:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    lines: dict[str, list[tuple]] = {}
    for (kind, n, redis), f in figs.items():
        suffix = (" + Redis adapter" if kind == "reference" else "") if redis else ", no Redis"
        name = SERVER_NAMES.get(kind, kind) + suffix
        lines.setdefault(name, []).append((n, f["fanout"][0], f["p99"][0]))
    for name, pts in lines.items():
        pts.sort()
        style = {"marker": "o", "label": name}
        fan = [(n, v) for n, v, _ in pts if v is not None]
        p99 = [(n, v) for n, _, v in pts if v is not None]
        if fan:
            axes[0].plot(*zip(*fan, strict=True), **style)
        if p99:
            axes[1].plot(*zip(*p99, strict=True), **style)
    axes[0].set_title("fan-out, one room")
    axes[0].set_ylabel("deliveries/s")
    axes[0].set_ylim(bottom=0)
    axes[1].set_title("p99 at the latency load")
    axes[1].set_ylabel("ms (log)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("processes (2 cores shared with the generator and Redis)")
        ax.set_xticks(sorted({k[1] for k in figs}))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return save(fig, img_dir / "bench_scaling.png", plt)
