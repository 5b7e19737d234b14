"""Every setting is documented where operators look: --help and docs/operations.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.config import SETTINGS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_every_setting_in_operations_md() -> None:
    text = DOCS.read_text()
    missing = [name for name in SETTINGS if f"`{name}`" not in text]
    assert missing == []


def test_every_setting_in_serve_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert [name for name in SETTINGS if name not in out] == []
