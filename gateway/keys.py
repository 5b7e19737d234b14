"""``flowwire api-key``: API keys as SHA-256 digests in the Redis hash ``ws:api_keys``.

The key itself is printed once, at creation, and stored nowhere.
"""

from __future__ import annotations

import argparse
import json
import time

import redis

from gateway.auth import API_KEYS_KEY, digest, new_api_key

__all__ = ["main"]


def main(url: str, args: argparse.Namespace) -> int:
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
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
                print(f"{key_digest.decode()[:16]}  user={record['user']} org={record.get('org') or '-'} "
                      f"label={record.get('label') or '-'} created={record.get('created')}")  # fmt: skip
            return 0
        matches = [d for d in entries if d.decode().startswith(args.prefix)]
        if len(matches) != 1:
            print(f"flowwire: {len(matches)} keys match {args.prefix!r}; give a longer prefix")
            return 2
        client.hdel(API_KEYS_KEY, matches[0])
        print(f"revoked {matches[0].decode()[:16]}")
        return 0
    except redis.exceptions.ConnectionError as exc:
        print(f"flowwire: Redis unavailable: {exc}")
        return 1
    finally:
        client.close()
