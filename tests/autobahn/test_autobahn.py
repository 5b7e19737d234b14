"""RFC 6455 conformance of flowwire's own WebSocket code, judged by Autobahn|Testsuite.

Autobahn|Testsuite's ``fuzzingclient`` (``wstest``, a Python 2.7 program) runs cases 1-7,
9 and 10 against the echo endpoint of ``tests/autobahn/echo_server.py`` (flowwire's
handshake, frame parser, protocol state and shell, with an echo handler). Every case must
come out OK, NON-STRICT or INFORMATIONAL, and every close OK or INFORMATIONAL. Cases 12
and 13 (permessage-deflate) do not apply: flowwire's own code negotiates no extension
(compression is served by the ASGI path, docs/protocol.md).

Needs a Python 2.7 interpreter (on PATH as ``python2.7``, or pyenv's); without one the
test fails and says so. ``wstest`` and its dependencies are installed from
``locks/autobahn-py27.txt`` with ``pip install --target`` into ``.cache/`` (once per
version of the lock file). The report (``index.json``, one HTML and JSON file per case,
``summary.txt``) is kept under ``test-artifacts/autobahn/``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "locks" / "autobahn-py27.txt"
ARTIFACTS = ROOT / "test-artifacts" / "autobahn"
#: Cases 8 and 11 do not exist; 12 and 13 are compression (see the docstring).
CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
#: (behavior, behaviorClose) pairs that pass
PASSED = {(b, c) for b in ("OK", "NON-STRICT", "INFORMATIONAL") for c in ("OK", "INFORMATIONAL")}

#: Runs ``wstest`` from the --target folder (its namespace packages need addsitedir).
WSTEST = "import site, sys; site.addsitedir(sys.argv.pop(1)); from autobahntestsuite.wstest import run; run()"


def find_python27() -> str | None:
    """The first Python 2.7 that runs: ``python2.7`` on PATH (a pyenv shim may be there
    without a 2.7 selected), then pyenv's versions folder."""
    candidates = [shutil.which("python2.7") or ""]
    for root in (os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv"), "/root/.pyenv"):
        if root:
            candidates += sorted(glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python2.7")))
    for candidate in filter(None, candidates):
        try:
            done = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2] == (2, 7))"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip() == "True":
            return candidate
    return None


def install_wstest(python27: str) -> Path:
    """The ``--target`` folder holding ``wstest``, installed if not there yet."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]
    target = ROOT / ".cache" / f"autobahn-py27-{digest}"
    if (target / ".installed").exists():
        return target
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    command = [python27, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    done = subprocess.run(
        [*command, "--target", str(staging), "-r", str(LOCK)], capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        pytest.fail(f"installing Autobahn|Testsuite from {LOCK.name} failed:\n{done.stdout}\n{done.stderr}")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    (target / ".installed").write_text(LOCK.read_text())
    return target


@pytest.fixture
def echo_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The echo server's port and the file its output goes to."""
    log = tmp_path / "echo_server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.autobahn.echo_server", "0"], cwd=ROOT, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 30
        while not log.read_text().endswith("\n"):  # "listening PORT" (or why it did not start)
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the echo server did not start: {log.read_text()}")
            time.sleep(0.05)
        first = log.read_text().splitlines()[0]
        if not first.startswith("listening "):
            pytest.fail(f"the echo server did not start: {log.read_text()}")
        yield int(first.split()[1]), log
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.timeout(600)  # a first install (about a minute) and the run (about 30 s here)
def test_autobahn_fuzzingclient(echo_server: tuple[int, Path]) -> None:
    python27 = find_python27()
    if python27 is None:
        pytest.fail(
            "Autobahn|Testsuite needs a Python 2.7 interpreter: none found as python2.7 on PATH "
            "nor under $PYENV_ROOT/versions/2.7*/bin (install one, e.g. `pyenv install 2.7.18`)"
        )
    target = install_wstest(python27)
    port, server_log = echo_server
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    spec = {
        "outdir": str(ARTIFACTS),
        "servers": [{"agent": "flowwire", "url": f"ws://127.0.0.1:{port}/ws"}],
        "cases": CASES,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    spec_path = ARTIFACTS / "fuzzingclient.json"
    spec_path.write_text(json.dumps(spec, indent=2))

    started = time.monotonic()
    run = subprocess.run(
        [python27, "-c", WSTEST, str(target), "-m", "fuzzingclient", "-s", str(spec_path)],
        cwd=ARTIFACTS,
        capture_output=True,
        text=True,
        timeout=240,
    )
    elapsed = time.monotonic() - started
    (ARTIFACTS / "wstest.log").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, f"wstest exited with {run.returncode}:\n{run.stderr[-4000:]}"

    results = json.loads((ARTIFACTS / "index.json").read_text())["flowwire"]
    behaviors = Counter(r["behavior"] for r in results.values())
    closes = Counter(r["behaviorClose"] for r in results.values())
    summary = (
        f"Autobahn|Testsuite fuzzingclient, cases {' '.join(CASES)}: {len(results)} cases in {elapsed:.1f}s\n"
        f"behavior: {dict(sorted(behaviors.items()))}\nbehaviorClose: {dict(sorted(closes.items()))}\n"
    )
    (ARTIFACTS / "summary.txt").write_text(summary)
    print(summary)

    failed = sorted(
        (c for c, r in results.items() if (r["behavior"], r["behaviorClose"]) not in PASSED),
        key=lambda case: tuple(map(int, case.split("."))),
    )
    details = ", ".join(f"{c} ({results[c]['behavior']}/{results[c]['behaviorClose']})" for c in failed)
    assert not failed, f"{len(failed)} Autobahn case(s) failed: {details}; see {ARTIFACTS}/index.html"
    # Every group asked for ran (a spec typo must not pass by running nothing).
    assert {case.split(".")[0] + ".*" for case in results} == set(CASES)
    assert len(results) >= 300

    output = server_log.read_text()
    assert "Traceback" not in output, f"the echo server logged an error:\n{output[-4000:]}"
