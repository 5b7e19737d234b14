"""``.ci/test`` builds its environment from nothing, at the locked versions (issue 11 §1).

The fresh-machine path itself is proven by running ``bash .ci/test`` in a new clone;
these tests keep the script and the lock honest between such runs.
"""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "test"
LOCK = ROOT / "locks" / "test.txt"


def _commands() -> list[str]:
    """The script's lines that run something (comments dropped)."""
    return [
        line.strip()
        for line in SCRIPT.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            assert pinned, f"locks/test.txt: {line!r} is not an exact pin"
            pins[name] = pinned
    return pins


def test_ci_makes_a_new_virtualenv_every_run() -> None:
    commands = _commands()
    assert any(re.search(r"VENV=\$\(mktemp -d\b", c) for c in commands), "no temporary folder for the venv"
    assert any(re.search(r'-m venv "\$VENV"$', c) for c in commands), "the venv is not created in it"
    assert any("trap" in c and 'rm -rf "$VENV"' in c for c in commands), "the venv is not removed"
    assert not any(".venv" in c for c in commands), "CI must not reuse a developer's .venv"


def test_ci_installs_from_the_lock_and_checks_it() -> None:
    commands = _commands()
    installs = [c for c in commands if "pip install" in c]
    assert installs, "no pip install"
    assert all("-c locks/test.txt" in c for c in installs), installs
    assert any("pip freeze" in c for c in commands), "the installed set is not compared with the lock"


def test_ci_fails_when_pytest_collects_nothing() -> None:
    script = SCRIPT.read_text()
    assert re.search(r'if \[ "\$status" = 5 \]; then\s+echo [^\n]*\n\s+exit 1', script)


def test_the_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_this_environment_has_the_locked_versions() -> None:
    """What the tests run on is what the lock says (CI installs with ``-c``; a developer's
    ``.venv`` made as README.md says matches too)."""
    wrong = {}
    for name, pinned in _locked().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "missing"
        if installed != pinned:
            wrong[name] = (pinned, installed)
    assert wrong == {}, f"locked vs installed: {wrong}"
