"""The Grafana dashboard (deploy/grafana/): every query names metrics a real gateway
exports (scraped from its /metrics), with PromQL functions only where functions go; and
it shows what the issue lists."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.inproc import serve

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "flowwire-dashboard.json"

FUNCTIONS = {
    "sum", "max", "min", "avg", "count", "topk", "bottomk", "quantile", "rate", "irate", "increase",
    "histogram_quantile", "clamp_min", "clamp_max", "abs", "label_values", "delta", "deriv",
}  # fmt: skip
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects; a function that is not PromQL's (or
    a name that is not a metric) fails."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    text = re.sub(r"\$\w+", "", text)  # dashboard variables
    text = re.sub(r"label_values\(([^,()]+),\s*\w+\s*\)", r"label_values(\1)", text)  # Grafana's: a label
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        token = match[0]
        if text[match.end() :].lstrip().startswith("("):
            assert token in FUNCTIONS, f"{token}() is not a PromQL function ({expr})"
        elif token not in KEYWORDS:
            names.add(token)
    return names


def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from walk(panel.get("panels", []))


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def queries() -> list[str]:
    doc = dashboard()
    exprs = [t["expr"] for p in walk(doc["panels"]) for t in p.get("targets", [])]
    exprs += [v["query"] for v in doc["templating"]["list"] if v["type"] == "query"]
    return exprs


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every sample name a gateway's /metrics has (scraped from a real one)."""

    async def scrape() -> str:
        async with serve("memory") as gw, httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{gw.port}/metrics")
            assert response.status_code == 200
            return response.text

    text = asyncio.run(scrape())
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_query_names_a_metric_the_gateway_exports(exported: set[str]) -> None:
    assert len(queries()) >= 12
    for expr in queries():
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - exported
        assert not unknown, f"{expr!r} names {sorted(unknown)}, not exported"


def test_the_checker_catches_a_metric_that_does_not_exist(exported: set[str]) -> None:
    assert metric_names("sum(rate(flowwire_deliveries[5m]))") - exported == {"flowwire_deliveries"}
    assert metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(x_bucket{job=~"$job"}[$__rate_interval])))'
    ) == {"x_bucket"}
    with pytest.raises(AssertionError):
        metric_names("sumx(flowwire_connections)")


def test_it_shows_what_operators_need() -> None:
    used = set().union(*(metric_names(q) for q in queries()))
    assert {
        "flowwire_connections",
        "flowwire_deliveries_total",
        "flowwire_reader_lag_seconds",
        "flowwire_replayed_total",
        "flowwire_slow_consumer_closes_total",
        "flowwire_rate_limit_closes_total",
        "flowwire_append_to_send_seconds_bucket",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "flowwire_event_loop_lag_max_seconds",
    } <= used
    doc = dashboard()
    ids = [p["id"] for p in walk(doc["panels"])]
    assert len(ids) == len(set(ids))
    for panel in walk(doc["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
