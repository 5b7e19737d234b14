"""The ``flowwire`` command.

Exit status: 0 success, 1 runtime failure (e.g. Redis unreachable), 2 bad usage or an
invalid setting (the message names it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

Handler = Callable[[argparse.Namespace], int]


def _fail(message: str, status: int = EXIT_USAGE) -> int:
    print(f"flowwire: {message}", file=sys.stderr)
    return status


def _cmd_publish(args: argparse.Namespace) -> int:
    from publisher import BlockingPublisher, PublishError, RedisSettings, SettingError, make_event

    try:
        data = json.loads(args.data)
    except json.JSONDecodeError as exc:
        return _fail(f"--data is not JSON: {exc}")
    if not isinstance(data, dict):
        return _fail("--data must be a JSON object")
    try:
        event = make_event(args.type, data)
        settings = RedisSettings.from_env()
    except (ValueError, SettingError) as exc:
        return _fail(str(exc))
    try:
        with BlockingPublisher(settings) as pub:
            print(pub.publish(event, org=args.org, user=args.user))
    except PublishError as exc:
        return _fail(str(exc), EXIT_FAILURE if exc.retryable else EXIT_USAGE)
    return EXIT_OK


def _cmd_schema(args: argparse.Namespace) -> int:
    from schemas import jsonschema

    out = Path(args.out)
    if args.check:
        problems = jsonschema.check(out)
        for problem in problems:
            print(problem, file=sys.stderr)
        return EXIT_FAILURE if problems else EXIT_OK
    for path in jsonschema.write(out):
        print(path)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowwire", description="Real-time event gateway for Intelligent Workflows."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "publish",
        help="validate and append one event to the stream; prints its id",
        description="Settings: REDIS_URL (or REDIS_HOST/REDIS_PORT/REDIS_PASSWORD/REDIS_DB), "
        "STREAM_KEY, STREAM_MAXLEN, PUBLISH_TIMEOUT.",
    )
    p.add_argument("type", help="event type, e.g. execution.started")
    p.add_argument("--data", required=True, help="the payload, a JSON object")
    p.add_argument("--org", help="organization id: only its connections receive the event")
    p.add_argument("--user", help="target user id: delivered on users:{id} only")
    p.set_defaults(handler=_cmd_publish)

    p = sub.add_parser("schema", help="write (or --check) the JSON Schemas of every message")
    p.add_argument("--out", default="docs/schema", help="directory (default: docs/schema)")
    p.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    p.set_defaults(handler=_cmd_schema)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
