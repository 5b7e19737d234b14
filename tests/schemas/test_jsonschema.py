"""The checked-in JSON Schemas in docs/schema/ match the Structs."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.jsonschema import MESSAGES, check, write

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schema"


def test_checked_in_schemas_are_current() -> None:
    problems = check(DOCS)
    assert problems == [], f"run `flowwire schema` to regenerate: {problems}"


def test_every_message_has_a_schema() -> None:
    assert len(MESSAGES) == 23
    for name in MESSAGES:
        doc = json.loads((DOCS / f"{name}.json").read_text())
        assert doc["title"] == name


def test_check_detects_staleness(tmp_path: Path) -> None:
    write(tmp_path)
    assert check(tmp_path) == []
    (tmp_path / "ping.json").write_text("{}")
    (tmp_path / "extra.json").write_text("{}")
    assert check(tmp_path) == ["extra extra.json", "stale ping.json"]
