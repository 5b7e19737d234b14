"""The checked-in JSON Schemas in docs/schema/ match the Structs."""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

from schemas.control import Filters
from schemas.jsonschema import MESSAGES, check, normalize, write

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schema"


def test_checked_in_schemas_are_current() -> None:
    problems = check(DOCS)
    assert problems == [], f"run `flowwire schema` to regenerate: {problems}"


def test_every_message_has_a_schema() -> None:
    assert len(MESSAGES) == 31  # 7 control, 5 of version 2, 3 of presence, 16 events
    for name in MESSAGES:
        doc = json.loads((DOCS / f"{name}.json").read_text())
        assert doc["title"] == name


def test_check_detects_staleness(tmp_path: Path) -> None:
    write(tmp_path)
    assert check(tmp_path) == []
    (tmp_path / "ping.json").write_text("{}")
    (tmp_path / "extra.json").write_text("{}")
    assert check(tmp_path) == ["extra extra.json", "stale ping.json"]


# -- independent of the msgspec version that renders them ---------------------------------
#
# msgspec 0.22 rendered a docstring as ``textwrap.dedent(doc).strip("\r\n")``, which keeps
# the continuation lines' indentation (the first line has none, so nothing is common);
# 0.23 removes it. The checked-in files must be what either version gives.


def _rendered_by_0_22(doc: str) -> str:
    return textwrap.dedent(doc).strip("\r\n")


def _rendered_by_0_23(doc: str) -> str:
    return inspect.cleandoc(doc)


def _schema_with(description: str) -> dict[str, Any]:
    return {
        "$defs": {
            "Filters": {"description": description, "properties": {"x": {"description": description}}},
        },
        "anyOf": [{"description": description}],
        "default": {"description": "  kept\n    as is"},
    }


def test_normalize_gives_one_rendering_for_both_msgspec_versions() -> None:
    doc = Filters.__doc__
    assert doc is not None and "\n    " in doc, "the docstring this test relies on lost its indented lines"
    old, new = _rendered_by_0_22(doc), _rendered_by_0_23(doc)
    assert old != new  # the two renderings really differ
    assert normalize(_schema_with(old)) == normalize(_schema_with(new)) == _schema_with(new)


def test_normalize_leaves_instance_data_alone() -> None:
    normalized = normalize(_schema_with("a\n    b"))
    assert normalized["default"] == {"description": "  kept\n    as is"}
    assert normalized["anyOf"] == [{"description": "a\nb"}]


def test_checked_in_descriptions_are_the_normalized_docstrings() -> None:
    """The committed bytes are the normalized rendering: what 0.22 and 0.23 both give."""
    doc = json.loads((DOCS / "subscribe.json").read_text())
    assert Filters.__doc__ is not None
    expected = _rendered_by_0_23(Filters.__doc__)
    assert doc["$defs"]["Filters"]["description"] == expected
    assert normalize({"description": _rendered_by_0_22(Filters.__doc__)})["description"] == expected
