"""Every command in README.md and docs/*.md runs as written, in order (issue 11 §2).

The convention, for whoever writes docs:

- A fenced block whose info string is ``sh`` (or ``bash``) or ``python`` is *runnable*:
  this test runs it. README.md comes first, then docs/*.md in name order; the blocks of
  a file in their order; all in **one** bash session (``set -euo pipefail``), so an
  ``export`` in one block holds for the next. A ``python`` block runs with the test's
  interpreter, in that session's environment.
- A block that must not run (it installs, runs the whole suite, or shows a deployment's
  configuration for another machine) is marked ``sh no-run`` / ``python no-run``.
- A long-running command is written as a user would run it beside the others: ending
  in ``&`` (``flowwire serve --port "$PORT" &``). The session's background jobs are
  stopped when it ends.
- The environment is the only substitution: the test starts a private redis-server on a
  free port and sets ``REDIS_URL`` and ``PORT`` (a free port) before the first block;
  the docs keep a value already set (``export REDIS_URL=${REDIS_URL:-redis://...}``).
  ``flowwire`` and ``python`` are this virtualenv's; commands run from the repository's
  root, as from a clone.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]
RUNNABLE = {"sh": "sh", "bash": "sh", "python": "python"}
_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([^`]*)$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str  # "sh" or "python"
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The runnable blocks of one Markdown file."""
    out: list[Block] = []
    fence: str | None = None
    info: list[str] = []
    body: list[str] = []
    start = 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = _FENCE.match(line.strip())
        if fence is None:
            if match:
                fence, info, body, start = match[1], match[2].split(), [], number
        elif match and match[1].startswith(fence) and not match[2].strip():
            lang = RUNNABLE.get(info[0]) if info else None
            if lang is not None and "no-run" not in info[1:]:
                out.append(Block(path, start, lang, "\n".join(body) + "\n"))
            fence = None
        else:
            body.append(line)
    return out


def documented_blocks() -> list[Block]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [b for f in files for b in blocks(f)]


def session_script(found: list[Block], scratch: Path) -> str:
    lines = [
        "set -euo pipefail",
        # Stop the background commands (flowwire serve, ...) however the session ends.
        "trap 'kill $(jobs -p) 2>/dev/null || true; wait || true' EXIT",
        f"cd {shlex.quote(str(ROOT))}",
    ]
    for i, block in enumerate(found):
        lines.append(f"echo {shlex.quote('### ' + block.where)} >&2")
        if block.lang == "sh":
            lines.append(block.text)
        else:
            script = scratch / f"block{i}.py"
            script.write_text(block.text)
            lines.append(f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}")
    lines.append("echo '### done' >&2")
    return "\n".join(lines) + "\n"


def test_the_parser_follows_the_convention(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "```sh\necho a\n```\n```sh no-run\necho b\n```\n```json\n{}\n```\n"
        "````python\nprint(1)\n```\nprint(2)\n````\n```\nplain\n```\n"
    )
    assert [(b.lang, b.text, b.line) for b in blocks(doc)] == [
        ("sh", "echo a\n", 1),
        ("python", "print(1)\n```\nprint(2)\n", 10),
    ]


def test_readme_and_docs_commands_run_as_written(redis_server: RedisServer, redis_url: str) -> None:
    found = documented_blocks()
    assert any(b.path.name == "README.md" and b.lang == "python" for b in found), "the publish example"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "JWT_", "FLOWWIRE_"))}
    env.update(
        REDIS_URL=redis_url,
        PORT=str(free_port()),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        DRAIN_WINDOW="100ms",  # the background gateway stops at once when the session ends
    )
    with tempfile.TemporaryDirectory() as scratch:
        script = session_script(found, Path(scratch))
        proc = subprocess.Popen(
            ["bash", "-c", script],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=100)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"the docs' commands did not finish:\n{err[-3000:]}")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    ran = [line[4:] for line in err.splitlines() if line.startswith("### ")]
    assert proc.returncode == 0, (
        f"failed in {ran[-1] if ran else '?'} (exit {proc.returncode}):\n{err[-3000:]}"
    )
    assert ran == [b.where for b in found] + ["done"]
    # The README's sequence works together: alice's tail (org acme, failed only) and the
    # Python client see both published failures.
    assert out.count('"execution_id":"exec_1a2b3c4d"') == 1, out
    assert out.count('"execution_id":"exec_5e6f7a8b"') == 1, out
    assert re.search(r"^\d+-\d+ execution\.failed exec_1a2b3c4d$", out, re.M), out
