"""``make bench-scale``'s printing, targets (issue 16), Markdown and chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import growth_target

MB = 1024 * 1024


def size_line(record: dict[str, Any]) -> str:
    db = record.get("db", {})
    return (
        f"  {record['endpoints']:,} known: seeded {record['seeded_per_s']:,}/s; otao RSS "
        f"{record['otao_rss_bytes'] / MB:.0f} MB; database {db.get('totalSize', 0) / MB:.0f} MB "
        f"({record['db_bytes_per_endpoint']:.0f} B per endpoint)"
    )


def _sweep(results: dict[str, Any], door: str, path: str) -> list[dict[str, Any]]:
    return sorted(
        (
            s
            for s in results["scenarios"]
            if s.get("door") == door and s.get("path") == path and "endpoints" in s
        ),
        key=lambda s: s["endpoints"],
    )


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 16: update-available p99 growth from the smallest size to the largest."""
    sweep = _sweep(results, "CDTP", "update-available")
    judged = growth_target(sweep, "endpoints", "update available (CDTP)")
    return [judged] if judged else []


def summary(results: dict[str, Any]) -> str:
    lines = ["", "targets (issue 16):"]
    for t in results.get("targets", []):
        lines.append(
            f"  {'met   ' if t['met'] else 'MISSED'} {t['target']}: {t['value']} "
            f"(baseline's own: {t['baseline_growth']})"
        )
    return "\n".join(lines)


def _cpu(scenario: dict[str, Any], key: str = "cpu_us_per_poll") -> str:
    return str(scenario.get(key, {}).get("otao", ""))


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        f"`make bench-scale`, {results['date']}, {machine['cores']} cores ({machine['cpu']}), "
        f"Python {machine['python']}; {results['timings'].get('total_s')} s in all "
        f"(seeding {results['timings'].get('seed_seconds')} s).",
        "",
        "| scenario | otao/s | baseline/s | ratio | p50 ms | p99 ms | baseline p50 ms "
        "| baseline p99 ms | otao CPU µs/poll | baseline CPU µs/poll |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in results["scenarios"]:
        ratio = f"{s['ratio']:.2f}" if s.get("ratio") is not None else ""
        base_cpu = s.get("baseline_cpu_us_per_poll", {}).get("baseline", "")
        lines.append(
            f"| {s['name']} | {s['otao_rps']:,.0f} | {s['baseline_rps']:,.0f} | {ratio} "
            f"| {s['p50_ms']:,.1f} | {s['p99_ms']:,.1f} | {s['baseline_p50_ms']} "
            f"| {s['baseline_p99_ms']} | {_cpu(s)} | {base_cpu} |"
        )
    lines += [
        "",
        "| known endpoints | seeded/s | otao RSS MB | otao RSS after polls MB "
        "| otao RSS growth B per endpoint | nx-27017 RSS MB | database MB (dbStats totalSize) "
        "| database B per endpoint |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    first = results["sizes"][0] if results["sizes"] else None
    for r in results["sizes"]:
        grown = r["endpoints"] - first["endpoints"] if first else 0
        per_endpoint = (
            f"{(r['otao_rss_bytes'] - first['otao_rss_bytes']) / grown:.1f}"
            if first and grown
            else ""
        )
        lines.append(
            f"| {r['endpoints']:,} | {r['seeded_per_s']:,} | {r['otao_rss_bytes'] / MB:.0f} "
            f"| {r['otao_rss_after_bytes'] / MB:.0f} | {per_endpoint} "
            f"| {r['nx27017_rss_bytes'] / MB:.0f} "
            f"| {r['db'].get('totalSize', 0) / MB:.0f} | {r['db_bytes_per_endpoint']:.0f} |"
        )
    for skipped in results.get("skipped_sizes", []):
        lines += [
            "",
            f"Not measured: {skipped['endpoints']:,} known endpoints (seeding them would have "
            f"taken about {skipped['seeding_estimate_s']:,} s at the rate of the size before, "
            f"the run about {skipped['run_estimate_s']:,} s: over `--budget`).",
        ]
    p = results.get("push")
    if p:
        job = (
            f"the job (offers recorded too) took {p['job_seconds']} s"
            if p["job_seconds"] is not None
            else f"the job (recording offers) had not finished {p['job_wait_s']:.0f} s after"
            " the last notification"
        )
        # The run's mode, as scale_push names the scenario: "... (general release)" or
        # "... (second wave opened, 1% -> 100%)" with --wave.
        mode = p["name"].rpartition("(")[2].rstrip(")")
        lines += [
            "",
            f"Push ({mode}): {p['notifications']:,} notifications at "
            f"{p['notifications_per_s']:,.0f}/s (walk-and-publish baseline "
            f"{p['baseline_rps']:,.0f}/s, ratio {p['ratio']}); first after "
            f"{p['time_to_first_ms']:,.0f} ms, last after {p['seconds_to_last']} s; {job}. "
            f"otao RSS {p['otao_rss_before_bytes'] / MB:.0f} MB before, peak "
            f"{p['otao_peak_rss_bytes'] / MB:.0f} MB during the job ({p['peak_from']}).",
        ]
    lines += [
        "",
        "| target (issue 16) | value | baseline's own | met |",
        "| --- | ---: | ---: | --- |",
    ]
    for t in results.get("targets", []):
        met = "yes" if t["met"] else "**no**"
        lines.append(f"| {t['target']} | {t['value']} | {t['baseline_growth']} | {met} |")
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rate, latency, memory) = plt.subplots(1, 3, figsize=(16, 5))
    for door, path_name, color in (
        ("CDTP", "steady-state", "#2b6cb0"),
        ("CDTP", "update-available", "#c05621"),
    ):
        sweep = _sweep(results, door, path_name)
        if not sweep:
            continue
        sizes = [s["endpoints"] for s in sweep]
        rate.plot(sizes, [s["otao_rps"] for s in sweep], "o-", color=color, label=path_name)
        rate.plot(
            sizes, [s["baseline_rps"] for s in sweep], "o:", color=color, label=f"{path_name} base"
        )
        latency.plot(
            sizes, [s["p99_ms"] for s in sweep], "s-", color=color, label=f"{path_name} p99"
        )
        latency.plot(
            sizes, [s["p50_ms"] for s in sweep], "s--", color=color, label=f"{path_name} p50"
        )
        latency.plot(
            sizes,
            [s["baseline_p99_ms"] for s in sweep],
            "s:",
            color=color,
            alpha=0.6,
            label=f"{path_name} baseline p99",
        )
    rate.set_title("CDTP polls a second, log (otao solid, baseline dotted)")
    latency.set_title("CDTP latency, ms")
    for axis in (rate, latency, memory):
        axis.set_xscale("log")
        axis.set_xlabel("known endpoints")
    rate.set_yscale("log")
    latency.set_ylim(bottom=0)
    rate.legend(fontsize=8)
    latency.legend(fontsize=7)
    sizes = [r["endpoints"] for r in results["sizes"]]
    memory.plot(sizes, [r["otao_rss_bytes"] / MB for r in results["sizes"]], "o-", label="otao RSS")
    memory.plot(
        sizes, [r["db"].get("totalSize", 0) / MB for r in results["sizes"]], "o-", label="database"
    )
    memory.plot(
        sizes, [r["nx27017_rss_bytes"] / MB for r in results["sizes"]], "o:", label="nx-27017 RSS"
    )
    memory.set_yscale("log")
    memory.set_ylabel("MB")
    memory.set_title("memory and database size")
    memory.legend(fontsize=8)
    subtitle = f"{results['date']}  {results['machine']['cores']} cores"
    p = results.get("push")
    if p:
        subtitle += (
            f"  |  push to {p['endpoints']:,}: {p['notifications_per_s']:,.0f}/s "
            f"(baseline {p['baseline_rps']:,.0f}/s), last after {p['seconds_to_last']} s, "
            f"peak RSS {p['otao_peak_rss_bytes'] / MB:.0f} MB"
        )
    figure.suptitle(f"otao make bench-scale  ({subtitle})", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
