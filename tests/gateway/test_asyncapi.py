"""The AsyncAPI document (issue 16): generated from the Structs, the committed copy
current, its close codes those of docs/protocol.md, and valid by the AsyncAPI project's
own parser (``@asyncapi/parser`` from npm, in tools/asyncapi-check/)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway import asyncapi
from schemas.control import CloseCode
from schemas.jsonschema import MESSAGES

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.json"
CHECKER = ROOT / "tools" / "asyncapi-check"


def flowwire(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_committed_document_is_current() -> None:
    done = flowwire("asyncapi", "--check")
    assert done.returncode == 0, f"run `flowwire asyncapi` and commit docs/asyncapi.json: {done.stderr}"


def test_check_reports_a_stale_or_missing_document(tmp_path: Path) -> None:
    path = tmp_path / "asyncapi.json"
    done = flowwire("asyncapi", "--check", "--out", str(path))
    assert done.returncode == 1 and "missing" in done.stderr
    assert flowwire("asyncapi", "--out", str(path)).returncode == 0
    assert flowwire("asyncapi", "--check", "--out", str(path)).returncode == 0
    doc = json.loads(path.read_text())
    del doc["components"]["schemas"]["Filters"]
    path.write_text(json.dumps(doc, indent=2) + "\n")
    done = flowwire("asyncapi", "--check", "--out", str(path))
    assert done.returncode == 1 and "stale" in done.stderr


def test_every_message_payload_is_its_structs_schema() -> None:
    doc = asyncapi.document()
    schemas = doc["components"]["schemas"]
    _, expected = msgspec.json.schema_components(
        [struct for struct, _ in MESSAGES.values()], ref_template="#/components/schemas/{name}"
    )
    for name, (struct, direction) in MESSAGES.items():
        message = doc["components"]["messages"][name]
        ref = message["payload"]["$ref"]
        assert ref == f"#/components/schemas/{struct.__name__}"
        assert schemas[struct.__name__]["properties"] == expected[struct.__name__]["properties"]
        assert message["x-direction"] == direction
        assert doc["channels"]["ws"]["messages"][name] == {"$ref": f"#/components/messages/{name}"}
    # what the gateway receives on /ws is what clients send; what it sends there, the rest
    assert ws_messages(doc, "receive") == {n for n, (_, d) in MESSAGES.items() if d == "client"}
    assert ws_messages(doc, "send") == {n for n, (_, d) in MESSAGES.items() if d == "server"}


def ws_messages(doc: dict[str, Any], action: str) -> set[str]:
    """The messages of the /ws operations with ``action``; for "send", replies included."""
    names: set[str] = set()
    for op in doc["operations"].values():
        if op["channel"]["$ref"] != "#/channels/ws":
            continue
        refs = op["messages"] if op["action"] == action else []
        if action == "send" and "reply" in op:
            refs = refs + op["reply"]["messages"]
        names |= {ref["$ref"].rsplit("/", 1)[1] for ref in refs}
    return names


def test_the_stream_and_the_legacy_mirror_are_described() -> None:
    doc = asyncapi.document()
    assert doc["channels"]["events"]["address"] == "ws:events"
    entry = doc["components"]["messages"]["streamEntry"]["payload"]
    assert entry["required"] == ["type", "data"] and set(entry["properties"]) == {
        "type",
        "data",
        "ts",
        "org",
        "user",
    }
    events = {n for n in MESSAGES if "." in n and not n.startswith("presence.")}
    assert set(entry["properties"]["type"]["enum"]) == events
    assert doc["channels"]["legacy"]["address"] == "ws:broadcast:all"
    legacy = doc["components"]["schemas"]["LegacyBroadcast"]
    assert set(legacy["required"]) == {"Channel", "Message", "WorkflowID", "ExecutionID", "Status", "UserID"}
    assert legacy["properties"]["Message"] == {"$ref": "#/components/schemas/LegacyMessage"}
    assert not [name for name in doc["components"]["schemas"] if name.startswith("_")]


def test_close_codes_are_those_documented() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split("## Close codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(m) for m in re.findall(r"^\| (\d{4}) \|", section, re.MULTILINE)}
    doc = asyncapi.document()
    assert {int(c) for c in doc["channels"]["ws"]["x-close-codes"]} == documented
    assert {int(c) for c in CloseCode} <= documented


def test_security_schemes_are_the_three_credentials() -> None:
    doc = asyncapi.document()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == schemes["bearer"] | {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert (schemes["queryToken"]["in"], schemes["queryToken"]["name"]) == ("query", "token")
    assert (schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == ("header", "X-API-Key")
    assert [s["$ref"].rsplit("/", 1)[1] for s in doc["servers"]["gateway"]["security"]] == [
        "bearer",
        "queryToken",
        "apiKey",
    ]


def run_parser(document: Path) -> subprocess.CompletedProcess[str]:
    """``node check.mjs DOCUMENT`` in tools/asyncapi-check, after ``npm ci`` if needed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed: the AsyncAPI parser is the npm package @asyncapi/parser"
    if not (CHECKER / "node_modules" / "@asyncapi" / "parser").is_dir():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=CHECKER, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return subprocess.run(
        [node, "check.mjs", str(document)], cwd=CHECKER, capture_output=True, text=True, timeout=120
    )


def test_the_asyncapi_parser_finds_no_error_in_the_committed_document() -> None:
    done = run_parser(COMMITTED)
    assert done.returncode == 0, f"@asyncapi/parser diagnostics:\n{done.stdout}\n{done.stderr}"
    assert "valid AsyncAPI 3.0.0" in done.stdout


@pytest.mark.parametrize(
    "breakage",
    [
        "an operation's message from another channel",
        "a schema with an invalid type",
    ],
)
def test_the_parser_check_fails_on_an_invalid_document(tmp_path: Path, breakage: str) -> None:
    doc = asyncapi.document()
    if breakage.startswith("an operation"):
        doc["operations"]["sendEvents"]["messages"].append({"$ref": "#/channels/events/messages/streamEntry"})
    else:
        doc["components"]["schemas"]["Filters"]["properties"]["statuses"]["anyOf"][0]["type"] = "lizt"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    done = run_parser(path)
    assert done.returncode == 1, done.stdout
    assert re.search(r"^error ", done.stdout, re.MULTILINE), done.stdout
