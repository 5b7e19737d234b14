"""``flowwire demo``: a gateway, a simulated executor and a live dashboard, in one
process. With no Redis configured it runs on the embedded event log; with
``REDIS_URL`` it publishes through the ``publisher`` API to Redis instead. It prints the
page's URL with a token for ``demo-user``, and a second URL for ``demo-guest`` (the
dashboard's "Watching" panel lists the organization's connected users)."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.app import FlowwireApp, Gateway, create_app
from gateway.auth import mint_token
from gateway.config import Config
from gateway.demo.executor import WORKFLOWS, Simulator
from gateway.server import run
from publisher import Publication, Publisher, RedisSettings
from schemas.stream import encode_entry

__all__ = ["STATIC", "build", "main"]

STATIC = Path(__file__).parent / "static"


async def _index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def _config(request: Request) -> Response:
    return JSONResponse(
        {"workflows": [{"id": wf.id, "name": wf.name, "steps": [s for s, _ in wf.steps]} for wf in WORKFLOWS]}
    )


def _simulate(rate: float, seed: int | None) -> Callable[[Gateway], Coroutine[Any, Any, None]]:
    async def job(gateway: Gateway) -> None:
        config = gateway.config
        if config.redis_url:
            settings = RedisSettings(url=config.redis_url, stream_key=config.stream_key)
            async with Publisher(settings) as pub:

                async def to_redis(batch: list[Publication]) -> None:
                    await pub.publish_many(batch)

                await Simulator(to_redis, rate=rate, seed=seed).run()
        else:

            async def to_log(batch: list[Publication]) -> None:
                for item in batch:
                    await gateway.log.append(encode_entry(item.event, org=item.org, user=item.user))

            await Simulator(to_log, rate=rate, seed=seed).run()

    return job


def build(config: Config, *, rate: float = 0.5, seed: int | None = None) -> FlowwireApp:
    routes = [
        Route("/", _index),
        Route("/demo/config", _config),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return create_app(config, routes=routes, background=[_simulate(rate, seed)])


def main(host: str, port: int, rate: float, seed: int | None) -> int:
    config = Config.from_env()
    if not config.jwt_secret:
        config = dataclasses.replace(config, jwt_secret=secrets.token_urlsafe(32))
    token = mint_token(config.jwt_secret, "demo-user", ttl=12 * 3600, issuer=config.jwt_issuer)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"flowwire demo: open http://{shown}:{port}/?token={token}", flush=True)
    print(f"  token (12 h): {token}", flush=True)
    # A second user of the same organization, to see the "Watching" panel change.
    guest = mint_token(config.jwt_secret, "demo-guest", ttl=12 * 3600, issuer=config.jwt_issuer)
    print(f"  second user:  http://{shown}:{port}/?token={guest}", flush=True)
    print(
        f"  tail it:      flowwire tail executions --url ws://{shown}:{port}/ws --token {token}", flush=True
    )
    return run(config, host, port, build(config, rate=rate, seed=seed))
