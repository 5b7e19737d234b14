"""Baseline servers for the benchmarks (see benchmarks/README.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn

__all__ = ["serve_uvicorn_baseline"]


def serve_uvicorn_baseline(
    doc: str | None, create_app: Callable[[str, str], Any], argv: Sequence[str] | None
) -> int:
    """The command line shared by the uvicorn baselines: ``--port --redis --secret``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.redis, args.secret),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        backlog=4096,
    )
    return 0
