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
    from publisher import (
        BlockingPublisher,
        Publication,
        PublishError,
        RedisSettings,
        SettingError,
        make_event,
    )

    try:
        data = json.loads(args.data)
    except json.JSONDecodeError as exc:
        return _fail(f"--data is not JSON: {exc}")
    if not isinstance(data, dict):
        return _fail("--data must be a JSON object")
    if args.count < 1:
        return _fail(f"--count must be at least 1, not {args.count}")
    try:
        # Each copy its own entry (PUBLISH_DEDUPE_WINDOW: each its own idempotency key).
        events = [Publication(make_event(args.type, data), args.org, args.user)] * args.count
        settings = RedisSettings.from_env()
    except (ValueError, SettingError) as exc:
        return _fail(str(exc))
    try:
        with BlockingPublisher(settings) as pub:
            print("\n".join(pub.publish_many(events)))
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


def _cmd_asyncapi(args: argparse.Namespace) -> int:
    from gateway import asyncapi

    out = Path(args.out)
    if args.check:
        problems = asyncapi.check(out)
        for problem in problems:
            print(problem, file=sys.stderr)
        return EXIT_FAILURE if problems else EXIT_OK
    print(asyncapi.write(out))
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from gateway.config import Config, SettingError
    from gateway.server import run

    try:
        config = Config.from_env()
    except SettingError as exc:
        return _fail(str(exc))
    if args.metrics_port is not None and args.workers == 1:
        return _fail("--metrics-port goes with --workers: one process serves its own /metrics")
    if args.workers > 1:
        from gateway.workers import supervise

        return supervise(config, args.host, args.port, args.workers, args.metrics_port)
    return run(config, args.host, args.port)


def _parse_workers(text: str) -> int:
    try:
        workers = int(text)
    except ValueError:
        workers = 0
    if workers < 1:
        raise argparse.ArgumentTypeError(f"--workers={text!r} is invalid: expected an integer >= 1")
    return workers


def _parse_ttl(text: str) -> float:
    from publisher.settings import SettingError, parse_duration

    try:
        ttl = parse_duration("--ttl", text)
    except SettingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if ttl <= 0:
        # A token that is expired when minted is refused by every gateway: say so now.
        raise argparse.ArgumentTypeError(f"--ttl={text!r} is invalid: expected a duration > 0, e.g. 15m")
    return ttl


def _cmd_token(args: argparse.Namespace) -> int:
    from gateway.auth import mint_token
    from gateway.config import Config, SettingError

    try:
        config = Config.from_env()
    except SettingError as exc:
        return _fail(str(exc))
    if not config.jwt_secret:
        return _fail("JWT_SECRET is not set: `flowwire token` signs HS256 development tokens")
    print(
        mint_token(
            config.jwt_secret,
            args.user,
            org_id=args.org,
            ttl=args.ttl,
            issuer=config.jwt_issuer,
            algorithm=next((a for a in config.jwt_algorithms if a.startswith("HS")), "HS256"),
        )
    )
    return EXIT_OK


def _cmd_api_key(args: argparse.Namespace) -> int:
    from gateway import keys
    from gateway.config import Config, SettingError

    try:
        config = Config.from_env()
    except SettingError as exc:
        return _fail(str(exc))
    if not config.redis_url:
        return _fail(
            "API keys live in Redis: set REDIS_URL (or REDIS_HOST, REDIS_SENTINELS, REDIS_CLUSTER_NODES)"
        )
    return keys.main(config.redis_url, args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from gateway import demo
    from gateway.config import SettingError

    try:
        return demo.main(args.host, args.port, args.rate, args.seed)
    except SettingError as exc:
        return _fail(str(exc))


def _cmd_tail(args: argparse.Namespace) -> int:
    from gateway import tail

    return tail.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowwire", description="Real-time event gateway for Intelligent Workflows."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "publish",
        help="validate and append an event (or --count copies) to the stream; prints its id",
        description="Settings: REDIS_URL (or REDIS_HOST/REDIS_PORT/REDIS_PASSWORD/REDIS_DB, or "
        "REDIS_SENTINELS/REDIS_SENTINEL_MASTER, or REDIS_CLUSTER_NODES), required: without them it "
        "refuses (exit 2) rather than guess a Redis; STREAM_KEY, STREAM_MAXLEN, PUBLISH_TIMEOUT, "
        "PUBLISH_WAIT_REPLICAS, PUBLISH_DEDUPE_WINDOW.",
    )
    p.add_argument("type", help="event type, e.g. execution.started")
    p.add_argument("--data", required=True, help="the payload, a JSON object")
    p.add_argument("--org", help="organization id: only its connections receive the event")
    p.add_argument("--user", help="target user id: delivered on users:{id} only")
    p.add_argument(
        "--count",
        type=int,
        default=1,
        help="append N copies (N entries) in one pipelined call; prints one id per line",
    )
    p.set_defaults(handler=_cmd_publish)

    p = sub.add_parser("schema", help="write (or --check) the JSON Schemas of every message")
    p.add_argument("--out", default="docs/schema", help="directory (default: docs/schema)")
    p.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    p.set_defaults(handler=_cmd_schema)

    p = sub.add_parser(
        "asyncapi",
        help="write (or --check) the AsyncAPI 3 document of the WebSocket API and the stream",
    )
    p.add_argument("--out", default="docs/asyncapi.json", help="file (default: docs/asyncapi.json)")
    p.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    p.set_defaults(handler=_cmd_asyncapi)

    from gateway.config import settings_help

    p = sub.add_parser(
        "serve",
        help="run a gateway",
        description="Run one gateway instance. Without Redis settings it runs on the "
        "embedded event log (a single node).",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument(
        "--workers",
        type=_parse_workers,
        default=1,
        help="gateway processes sharing the port (SO_REUSEPORT), each with its own reader; "
        "SIGTERM drains them all; needs Redis (default 1)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="with --workers: serve every worker's /metrics on this port, labelled worker",
    )
    p.set_defaults(handler=_cmd_serve)

    p = sub.add_parser(
        "demo",
        help="run a gateway with a simulated executor and a live dashboard",
        description="Serves the dashboard at / and prints its URL with a token. Runs on the "
        "embedded event log unless REDIS_URL is set. The settings of `serve` apply.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--rate", type=float, default=0.5, help="new executions per second (default 0.5)")
    p.add_argument("--seed", type=int, default=None, help="random seed, for a reproducible run")
    p.set_defaults(handler=_cmd_demo)

    p = sub.add_parser(
        "token",
        help="mint a development JWT signed with JWT_SECRET",
        description="Prints a token shaped like the platform's (user_id, sub, organization_id, iss, exp).",
    )
    p.add_argument("--user", required=True)
    p.add_argument("--org")
    p.add_argument("--ttl", type=_parse_ttl, default=900.0, help="lifetime, e.g. 15m (default)")
    p.set_defaults(handler=_cmd_token)

    p = sub.add_parser("api-key", help="create, list and revoke API keys (stored in Redis)")
    keys_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    k = keys_sub.add_parser("create", help="print a new key, once")
    k.add_argument("--user", required=True)
    k.add_argument("--org")
    k.add_argument("--label", default="")
    keys_sub.add_parser("list", help="list keys (digest prefixes, never the keys)")
    k = keys_sub.add_parser("revoke", help="revoke a key by its digest prefix (from list)")
    k.add_argument("prefix")
    p.set_defaults(handler=_cmd_api_key)

    p = sub.add_parser(
        "tail",
        help="print events as they arrive (troubleshooting)",
        description="Connects to a gateway and prints every frame, one JSON per line, on stdout; "
        "notices on stderr. Reconnects and resumes across drains and broken connections (with "
        "several --url, on the next one). Exits 1 when the credentials or a subscription are "
        "refused (an error reply) or no gateway answers --retries times in a row.",
    )
    p.add_argument("channels", nargs="*", default=["executions"], metavar="CHANNEL")
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=V,...",
        help="workflow_ids=..., execution_ids=... or statuses=... (repeatable)",
    )
    p.add_argument(
        "--url",
        action="append",
        default=[],
        help="gateway WebSocket URL (default ws://127.0.0.1:8080/ws); repeat for several gateways",
    )
    p.add_argument("--token", default=None, help="JWT (default: $FLOWWIRE_TOKEN)")
    p.add_argument("--api-key", default=None, help="API key (default: $FLOWWIRE_API_KEY)")
    p.add_argument("--since", default=None, help="resume after this event id")
    p.add_argument("--count", type=int, default=0, help="exit after this many events")
    p.add_argument(
        "--retries", type=int, default=10, help="failed connects in a row before giving up (default 10)"
    )
    p.set_defaults(handler=_cmd_tail)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
