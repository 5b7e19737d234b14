"""The docs stand on their own (issue 11): no reference to documents outside the
repository, references from the code to sections that exist, one 1012 reason
everywhere, and the LICENSE that pyproject.toml names."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "web" / "README.md",
    ROOT / "benchmarks" / "README.md",
    ROOT / "locks" / "README.md",
]
#: the drain's close reason, its number replaced (gateway/app.py, Gateway.drain)
RESTART_REASON = "restart; reconnect after Ns"


def _headings(path: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")}


def test_the_docs_cite_no_document_outside_the_repository() -> None:
    outside = re.compile(r"DESIGN(\.md| §)|STYLE(\.md| habit)")
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in DOCS
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if outside.search(line)
    ]
    assert hits == []


def test_section_references_in_the_code_name_real_sections() -> None:
    """``(docs/protocol.md, "Filters")`` in a docstring: that file has that heading (or
    one that starts with it and a colon)."""
    reference = re.compile(r'((?:docs/\w+|benchmarks/README)\.md), "([^"]+)"')
    found = []
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        text = " ".join(path.read_text().split())  # a reference may wrap across lines
        for doc, section in reference.findall(text):
            found.append((path.name, doc, section))
            headings = _headings(ROOT / doc)  # "Resume" names "Resume: `id`, `position`, ..."
            assert any(h == section or h.startswith(section + ":") for h in headings), (
                f"{path.relative_to(ROOT)}: {doc} has no {section!r}"
            )
    assert len(found) >= 10, found  # the references this test exists for


def _restart_examples(path: Path) -> list[str]:
    return [
        re.sub(r"\d+(\.\d+)?", "N", quoted)
        for quoted in re.findall(r'"([^"\n]*restart[^"\n]*)"', path.read_text())
    ]


def test_one_1012_reason_in_the_docs() -> None:
    protocol = _restart_examples(ROOT / "docs" / "protocol.md")
    web = _restart_examples(ROOT / "web" / "README.md")
    assert protocol and web
    assert set(protocol) == set(web) == {RESTART_REASON}


def test_the_license_pyproject_names_is_there() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    parts = (
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        "9. Accepting Warranty or Additional Liability.",
        "END OF TERMS AND CONDITIONS",
        "APPENDIX: How to apply the Apache License to your work.",
    )
    for part in parts:
        assert part in text, part
