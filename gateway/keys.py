"""``flowwire api-key``: API keys as SHA-256 digests in the Redis hash ``ws:api_keys``.

The key itself is printed once, at creation, and stored nowhere.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import redis

from gateway.auth import API_KEYS_KEY, digest, new_api_key
from publisher.connect import sync_client
from schemas.codec import rfc3339_from_ms

__all__ = ["created_text", "main"]


def created_text(created: object) -> str:
    """The record's ``created`` (epoch seconds, as stored) as RFC 3339 UTC."""
    if isinstance(created, int | float) and not isinstance(created, bool) and 0 <= created < 253402300800:
        return rfc3339_from_ms(int(created * 1000))
    return "-"


def main(url: str, args: argparse.Namespace) -> int:
    # Sentinel and Cluster too (typed as Redis: a RedisCluster has the same commands)
    client: redis.Redis = sync_client(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        if args.action == "create":
            key = new_api_key()
            record = {
                "user": args.user,
                "org": args.org,
                "label": args.label,
                "created": int(time.time()),
            }
            client.hset(API_KEYS_KEY, digest(key), json.dumps(record))
            print(key)
            return 0
        entries: dict[bytes, bytes] = client.hgetall(API_KEYS_KEY)  # type: ignore[assignment]
        if args.action == "list":
            for key_digest, raw in sorted(entries.items()):
                record = json.loads(raw)
                created = created_text(record.get("created"))
                print(f"{key_digest.decode()[:16]}  user={record['user']} org={record.get('org') or '-'} "
                      f"label={record.get('label') or '-'} created={created}")  # fmt: skip
            return 0
        matches = [d for d in entries if d.decode().startswith(args.prefix)]
        if len(matches) != 1:
            print(
                f"flowwire: {len(matches)} keys match {args.prefix!r}; give a longer prefix", file=sys.stderr
            )
            return 2
        client.hdel(API_KEYS_KEY, matches[0])
        print(f"revoked {matches[0].decode()[:16]}")
        return 0
    except redis.exceptions.ConnectionError as exc:
        print(f"flowwire: Redis unavailable: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
