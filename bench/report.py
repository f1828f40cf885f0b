"""The benchmark's table (against the targets) and its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _check(ok: bool) -> str:
    return "met" if ok else "MISSED"


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(scenario, figures, target, met?) for each scenario."""
    lat, browser, rep, idle, pvp = (
        r["latency"],
        r["browser"],
        r["reporter"],
        r["idle"],
        r["push_vs_poll"],
    )
    big = r["fanout"][-1]
    out = [
        (
            "1 task, 1 watcher, 10 updates/s (Socket.IO)",
            f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms "
            f"(n={lat['n']})",
            "p50 <= 1.5 ms, p99 <= 5 ms",
            _check(lat["p50_ms"] <= 1.5 and lat["p99_ms"] <= 5),
        ),
        (
            "same, in Chromium (update -> DOM)",
            f"p50 {browser['p50_ms']} ms, p99 {browser['p99_ms']} ms, max {browser['max_ms']} ms "
            f"(n={browser['n']}; p50 of each run: {browser['runs_p50_ms']})",
            "p50 <= 5 ms, p99 <= 20 ms",
            _check(browser["p50_ms"] <= 5 and browser["p99_ms"] <= 20),
        ),
        (
            f"fan-out: {big['watchers']} watchers, {big['tasks']} tasks x 5 updates/s",
            f"{big['deliveries_per_s']}/s delivered (of {big['expected_per_s']}), "
            f"p50 {big['p50_ms']} ms, p99 {big['p99_ms']} ms, lost {big['lost']}, "
            f"web RSS {big['web_rss_mb']} MB, web CPU {big['web_cpu']:.0%}, "
            f"load generator CPU {big['load_generator_cpu']:.0%}",
            # The 5,000/s offered, kept up with: a window's edge may leave out
            # an update or two, which `lost` would count were they lost.
            ">= 5,000/s (99 % of those offered in the window), p99 <= 100 ms, 0 lost",
            _check(
                big["expected_per_s"] >= 5000
                and big["deliveries_per_s"] >= 0.99 * big["expected_per_s"]
                and big["p99_ms"] <= 100
                and big["lost"] == 0
            ),
        ),
        (
            f"reporter hot loop ({rep['calls']:,} update() calls)",
            f"{rep['ours_ns']} ns/call; tqdm {rep['tqdm_ns']} ns ({rep['ours_vs_tqdm']}x); "
            f"update_state {rep['update_state_ns']:,.0f} ns ({rep['update_state_vs_ours']:,.0f}x "
            f"ours); {rep['pushes']} pushes",
            "<= 1.0x tqdm; >= 100x cheaper than update_state",
            _check(rep["ours_vs_tqdm"] <= 1.0 and rep["update_state_vs_ours"] >= 100),
        ),
        (
            f"idle open bar for {idle['seconds']:g} s",
            f"{idle['app_messages']} application messages; transport: {idle['transport_packets']} "
            f"packets, {idle['transport_bytes']} bytes",
            "0 messages (pings aside)",
            _check(idle["app_messages"] == 0),
        ),
        (
            f"push vs polling every 500 ms ({pvp['watchers']} watchers, {pvp['tasks']} tasks)",
            f"push p50 {pvp['push']['p50_ms']} ms vs poll p50 {pvp['poll']['p50_ms']} ms "
            f"({pvp['latency_ratio']}x); web CPU per watcher: push "
            f"{pvp['push']['web_cpu_ms_per_watcher_s']} vs poll "
            f"{pvp['poll']['web_cpu_ms_per_watcher_s']} ms/s",
            "push latency >= 100x lower, CPU per watcher lower",
            _check(pvp["latency_ratio"] >= 100 and pvp["cpu_ratio"] > 1),
        ),
        _storm_row(r["storm"]),
    ]
    if "churn" in r:
        out.append(_churn_row(r["churn"]))
    if "churn_spread" in r:
        out.append(_churn_row(r["churn_spread"]))
    if "scaleout" in r:
        so = r["scaleout"]
        ceiling = so["ceiling_pushes_per_s"]
        ceiling_text = "none from this cost" if ceiling is None else f"{ceiling:,}/s"
        out.append(
            (
                f"scale-out: {so['web_processes']} web processes, each hosting a quarter of "
                f"{so['rooms']} rooms; {so['pushes_per_s']} pushes/s for one's rooms",
                f"CPU per push: {so['foreign_us_per_push']} µs in each process not hosting "
                f"the room, {so['hosted_us_per_push']} µs in the one hosting it; "
                f"cluster ceiling {ceiling_text}; "
                f"delivered {so['delivered_on_web0']}/{so['pushes']}, elsewhere "
                f"{so['delivered_elsewhere']}",
                "a push for another's room <= 10 µs (42-59 µs before task channels)",
                _check(
                    so["foreign_us_per_push"] <= 10
                    and so["delivered_on_web0"] >= so["pushes"]
                    and so["delivered_elsewhere"] == 0
                ),
            )
        )
    if "watchers" in r:
        out.append(_watchers_row(r["watchers"]))
    out += [_connections_row(c) for c in r.get("connections", [])]
    out += [_restart_row(r[key]) for key in ("restart", "restart_gevent") if key in r]
    return out


def _restart_row(r: dict[str, Any]) -> tuple[str, str, str, str]:
    """A web restart with N bars open: how long until every bar is back."""
    back = r["back_s"]
    refusals = {c: n for c, n in r["acks"].items() if c not in ("ok", "late ok", "timeout")}
    took = "not all" if r["all_back_s"] is None else f"all in {r['all_back_s']} s"
    figures = (
        f"{r['back']:,} of {r['watchers']:,} bars back ({took}; serving again after "
        f"{r['down_s']} s): p50 {back['p50_s']} s, p99 {back['p99_s']} s, max {back['max_s']} s; "
        f"acks {r['acks']}; connect failures {r['connect_failures']}; web CPU "
        f"{r['web_cpu']:.0%} ({r['web_cpu_s']} s), RSS {r['web_rss_mb']} MB"
    )
    met = r["all_back_s"] is not None and r["all_back_s"] <= r["target_s"] and not refusals
    served = " (gunicorn + gevent)" if r.get("server") == "gevent" else ""
    if r["watchers"] < 10_000:
        return (
            f"web restart{served}, {r['watchers']:,} bars open",
            figures,
            "(smaller than the 10,000 target)",
            "-",
        )
    return (
        f"web restart{served}, {r['watchers']:,} bars open ({r['tickers']} tasks x {r['rate']:g} "
        f"updates/s), each reconnecting as the browser client does",
        figures,
        f"every bar back (ack and push) within {r['target_s']:g} s; 0 unavailable/not_found",
        _check(met),
    )


def _watchers_row(w: dict[str, Any]) -> tuple[str, str, str, str]:
    """N watchers on one web process, all receiving pushes."""
    figures = (
        f"{w['deliveries_per_s']:,}/s delivered (of {w['expected_per_s']:,.0f}), "
        f"p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms, max {w['max_ms']} ms, lost {w['lost']}; "
        f"web CPU {w['web_cpu']:.0%} ({w['web_us_per_delivery']} µs per delivery), "
        f"RSS {w['web_rss_mb']} MB; load generator CPU "
        + " + ".join(f"{c:.0%}" for c in w["load_generator_cpu"])
    )
    scenario = (
        f"{w['watchers']:,} watchers on one web process ({w['server']}): {w['tasks']} tasks "
        f"x {w['updates_per_s']:g} updates/s, {w['watchers'] // w['tasks']} watchers each"
    )
    if w["watchers"] < 10_000:
        return scenario, figures, "(smaller than the 10,000 target)", "-"
    met = w["deliveries_per_s"] >= 0.99 * w["expected_per_s"] and w["p99_ms"] <= 100
    return scenario, figures, ">= 10,000/s, p99 <= 100 ms, 0 lost", _check(met and not w["lost"])


def _connections_row(c: dict[str, Any]) -> tuple[str, str, str, str]:
    """N idle watchers on one web process: time to open, RSS, KB per connection."""
    figures = (
        f"opened {c['opened']:,} in {c['open_s']} s ({c['open_failures']} failed); web RSS "
        f"{c['baseline_rss_mb']} MB at 0, {c['connected_rss_mb']} MB connected, "
        f"{c['idle_rss_mb']} MB in rooms after {c['hold_s']:g} s idle: "
        f"{c['kb_per_connection']} KB per connection, {c['kb_per_watcher_idle']} KB per "
        f"watcher; web CPU while idle {c['idle_web_cpu']:.0%}; "
        f"{c['subscribe_refused']} subscribes refused"
    )
    if c["watchers"] < 10_000:
        target, met = "(smaller than the 10,000 target: for comparison)", "-"
    else:
        target = "opened <= 20 s; web RSS <= 300 MB idle (<= 25 KB per connection)"
        met = _check(
            c["opened"] == c["watchers"]
            and c["open_s"] <= 20
            and c["idle_rss_mb"] <= 300
            and c["kb_per_watcher_idle"] <= 25
        )
    return (
        f"{c['watchers']:,} idle watchers, one web process ({c['server']})",
        figures,
        target,
        met,
    )


def _storm_row(storm: dict[str, Any]) -> tuple[str, str, str, str]:
    sub, lists = storm["subscribe"], storm["list"]
    refused = sub["n"] - sub["correct"]
    return (
        f"storm: {storm['watchers']} connections send `subscribe` for one new task at once "
        f"({storm['rounds']}x), then `list`",
        f"subscribe ack p50 {sub['p50_ms']} ms, p99 {sub['p99_ms']} ms, {sub['correct']} of "
        f"{sub['n']} correct, {sub['unavailable']} unavailable; list ack p50 "
        f"{lists['p50_ms']} ms, p99 {lists['p99_ms']} ms, {lists['correct']} of "
        f"{lists['n']} correct, {lists['unavailable']} unavailable",
        "every ack correct, p99 <= 1 s, 0 unavailable",
        _check(refused == 0 and lists["n"] == lists["correct"] and sub["p99_ms"] <= 1000),
    )


def _churn_row(c: dict[str, Any]) -> tuple[str, str, str, str]:
    sub = c.get("subscribe_ack", {})
    return (
        f"churn: {c['watchers']:,} watchers, {c['slots']} tasks of 3 s at 5 updates/s, "
        "each restarted as it ends (start, subscribes; ended cards dismissed as the client does); "
        + (
            "first starts spread over 3 s"
            if c.get("spread")
            else "all started at once, so they end and start again in waves"
        ),
        f"{c['deliveries_per_s']:,}/s delivered, p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms, "
        f"max {c['max_ms']} ms, lost {c['lost']}; {c['starts_per_s']} starts/s; subscribe ack "
        f"p50 {sub.get('p50_ms')} ms, p99 {sub.get('p99_ms')} ms; web CPU {c['web_cpu']:.0%}, "
        f"RSS {c['web_rss_mb']} MB; load generator CPU {c['load_generator_cpu']:.0%}",
        "p99 <= 50 ms, web CPU <= 30% at about 5,000 deliveries/s (>= 4,750), 0 lost",
        _check(
            c["p99_ms"] <= 50
            and c["web_cpu"] <= 0.3
            and c["deliveries_per_s"] >= 4750
            and c["lost"] == 0
        ),
    )


def table(r: dict[str, Any]) -> str:
    lines = [f"progressbar benchmarks on {r['machine']} ({r['started']})", ""]
    lines.append("| scenario | measured | target | |")
    lines.append("|---|---|---|---|")
    for scenario, figures, target, met in rows(r):
        lines.append(f"| {scenario} | {figures} | {target} | {met} |")
    lines.append("")
    lines.append(
        "fan-out by watchers: "
        + "; ".join(
            f"{f['watchers']}: {f['deliveries_per_s']}/s p50 {f['p50_ms']} p99 {f['p99_ms']} ms "
            f"lost {f['lost']}"
            for f in r["fanout"]
        )
    )
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conns = r.get("connections", [])
    fig, axes = plt.subplots(1, 3 if conns else 2, figsize=(18 if conns else 12, 4.5))
    left, right = axes[0], axes[1]
    series = [
        ("Socket.IO client", r["latency"]["samples_ms"]),
        ("Chromium DOM", r["browser"]["samples_ms"]),
        (f"fan-out, {r['fanout'][-1]['watchers']} watchers", r["fanout"][-1]["samples_ms"]),
        (
            f"subscribe storm of {r['storm']['watchers']}: storm sent to ack",
            r["storm"]["subscribe"]["samples_ms"],
        ),
    ]
    if "churn" in r:
        series.append((f"churn, {r['churn']['watchers']} watchers", r["churn"]["samples_ms"]))
    if "churn_spread" in r:
        spread = r["churn_spread"]
        series.append((f"churn spread, {spread['watchers']} watchers", spread["samples_ms"]))
    if "watchers" in r:
        series.append((f"{r['watchers']['watchers']:,} watchers", r["watchers"]["samples_ms"]))
    for label, samples in series:
        if samples:
            values = sorted(samples)
            fractions = [(i + 1) / len(values) for i in range(len(values))]
            left.plot(values, fractions, label=f"{label} (n={len(values)})")
    left.set_xscale("log")
    left.set_xlabel("latency: update() to delivery; storm: sent to ack (ms, log)")
    left.set_ylabel("fraction of updates")
    left.set_title("Latency distribution")
    left.grid(True, which="both", alpha=0.3)
    left.legend()

    watchers = [f["watchers"] for f in r["fanout"]]
    right.plot(watchers, [f["p50_ms"] for f in r["fanout"]], "o-", label="p50")
    right.plot(watchers, [f["p99_ms"] for f in r["fanout"]], "s-", label="p99")
    right.set_xlabel("connected watchers (10 per task, 5 updates/s each)")
    right.set_ylabel("latency (ms)")
    right.set_title("Latency against watchers, one web process")
    right.grid(True, alpha=0.3)
    right.legend()
    if conns:
        _plot_connections(axes[2], conns)
    fig.suptitle(f"progressbar on {r['machine']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_connections(ax: Any, conns: list[dict[str, Any]]) -> None:
    """KB per idle connection, connected and in a room, by server."""
    labels = [f"{c['server']}\n{c['watchers']:,}" for c in conns]
    xs = range(len(conns))
    ax.bar([x - 0.2 for x in xs], [c["kb_per_connection"] for c in conns], 0.4, label="connected")
    ax.bar([x + 0.2 for x in xs], [c["kb_per_watcher_idle"] for c in conns], 0.4, label="in a room")
    ax.axhline(25, color="grey", linestyle="--", label="target 25 KB")
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("web RSS per idle connection (KB)")
    ax.set_title("Memory per connection, one web process")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
