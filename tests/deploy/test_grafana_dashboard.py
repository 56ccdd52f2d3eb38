"""deploy/grafana-dashboard.json: valid JSON whose every query names only metrics otao exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from otao.observability.metrics import Metrics, Sampled, exported_names

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"

# PromQL words that look like metric names: functions, aggregations, keywords.
_PROMQL = frozenset(
    {
        "sum", "rate", "increase", "max", "min", "avg", "count", "by", "without", "on",
        "histogram_quantile", "label_values", "irate", "topk", "bottomk", "and", "or", "unless",
    }
)  # fmt: skip
# A name followed by "(" is a function; names inside {...} are labels; "..." are strings.
_STRINGS = re.compile(r'"[^"]*"')
_LABELS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without)\s*\([^)]*\)")
_RANGES = re.compile(r"\[[^\]]*\]")
_VARIABLE_QUERY = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*).*,\s*\w+\s*\)")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class _Zero:
    """Every count the sampled metrics read, at zero (only the names matter here)."""

    def __getattr__(self, name: str) -> int:
        return 0


def metric_names(expr: str) -> set[str]:
    variable = _VARIABLE_QUERY.fullmatch(expr.strip())
    if variable is not None:  # Grafana's label_values(metric, label): the label is no metric
        return {variable.group(1)}
    stripped = _RANGES.sub("", _GROUPING.sub("", _LABELS.sub("", _STRINGS.sub("", expr))))
    names = set()
    for match in _NAME.finditer(stripped):
        following = stripped[match.end() :].lstrip()
        name = match.group()
        if following.startswith("(") or name in _PROMQL or name.startswith("$"):
            continue
        if stripped[match.start() - 1 : match.start()] == "$":
            continue  # a Grafana variable ($__rate_interval)
        if re.fullmatch(r"\d+(e\d+)?", name) or re.fullmatch(r"e\d+", name):
            continue
        names.add(name)
    return names


def queries(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("expr", "query") and isinstance(v, str)]
        return found + [q for v in node.values() for q in queries(v)]
    if isinstance(node, list):
        return [q for v in node for q in queries(v)]
    return []


def otao_exports() -> frozenset[str]:
    metrics = Metrics.with_own_registry()
    zero: Any = _Zero()
    metrics.registry.register(Sampled(zero, zero, [zero], zero))
    return exported_names(metrics.registry)


def test_the_dashboard_is_json_with_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["panels"]
    assert all(panel["targets"] for panel in dashboard["panels"])


def test_every_query_names_only_metrics_otao_exports() -> None:
    exported = otao_exports()
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [q for q in queries(dashboard) if q != "prometheus"]
    assert exprs
    unknown = {(expr, name) for expr in exprs for name in metric_names(expr) - exported}
    assert not unknown


def test_a_misspelt_metric_would_be_found() -> None:
    expr = 'sum(rate(otao_request_total{door="grpc"}[$__rate_interval]))'
    assert metric_names(expr) == {"otao_request_total"}
    assert "otao_request_total" not in otao_exports()
