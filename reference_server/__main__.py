"""Command line: `python -m reference_server [--host H] [--port P] [--redis-url URL] [--demo]`.

For Redis behind Sentinel, `--redis-sentinels HOST:PORT,... --redis-sentinel-master NAME`
replace `--redis-url`.

Every option can also come from the environment (`WS_HOST`, `WS_PORT`, `REDIS_URL`,
`WS_DEMO`, ...); options win. A bad setting exits with status 2 and a sentence naming it.
On SIGTERM or SIGINT every client gets `disconnect_notice server_shutdown` and close 1001
within `WS_SHUTDOWN_GRACE_SECONDS`, then the process exits.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import uvicorn

from .app import WS_PATH, create_app
from .errors import SettingsError
from .handshake import protocols
from .logs import configure_logging
from .server import Server
from .settings import Settings, split_list

__all__ = ["main", "uvicorn_config"]


class _Uvicorn(uvicorn.Server):
    """uvicorn, with our clients closed (notice + 1001) before uvicorn's own 1012."""

    hive: Server
    """The instance to drain."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting first, so nobody joins during the drain
        await self.hive.drain()
        await super().shutdown(sockets)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (the CLI reference is generated from it)."""
    parser = argparse.ArgumentParser(
        prog="python -m reference_server",
        description="Run the Agent Hive dashboard reference server.",
        epilog="Every setting also reads its WS_* environment variable (see the configuration "
        "reference); command-line options win.",
    )
    parser.add_argument("--host", help="interface to listen on (WS_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (WS_PORT, default 8000)")
    parser.add_argument("--redis-url", help="Redis URL for fan-out across instances (REDIS_URL)")
    parser.add_argument(
        "--redis-sentinels",
        metavar="HOST:PORT,...",
        help="Redis Sentinel addresses, instead of --redis-url (WS_REDIS_SENTINELS)",
    )
    parser.add_argument(
        "--redis-sentinel-master",
        metavar="NAME",
        help="the master name the Sentinels monitor (WS_REDIS_SENTINEL_MASTER)",
    )
    parser.add_argument(
        "--demo", action="store_true", default=None, help="publish demo traffic (WS_DEMO)"
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="lowest log level written (WS_LOG_LEVEL, default info)",
    )
    return parser


def _without_overridden(environ: Mapping[str, str], args: argparse.Namespace) -> dict[str, str]:
    """`environ` without the Redis address the command line replaces.

    `--redis-sentinels` replaces `REDIS_URL`, and `--redis-url` replaces the Sentinel
    settings: the option wins over the environment, as every option does. Both on the
    command line, or both in the environment, stay an error (`Settings`).
    """
    dropped: tuple[str, ...] = ()
    if args.redis_sentinels is not None and args.redis_url is None:
        dropped = ("REDIS_URL",)
    elif args.redis_url is not None and args.redis_sentinels is None:
        dropped = ("WS_REDIS_SENTINELS", "WS_REDIS_SENTINEL_MASTER")
    return {k: v for k, v in environ.items() if k not in dropped}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(
            _without_overridden(os.environ, args),
            host=args.host,
            port=args.port,
            redis_url=args.redis_url,
            redis_sentinels=split_list(args.redis_sentinels),
            redis_sentinel_master=args.redis_sentinel_master,
            demo=args.demo,
            log_level=args.log_level,
        )
    except SettingsError as exc:
        print(f"reference_server: invalid setting: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, repeat_window_seconds=settings.log_repeat_window_seconds)
    app = create_app(settings)
    runner = _Uvicorn(uvicorn_config(settings, app))
    runner.hive = app.state.server
    base = f"{settings.host}:{settings.port}"
    print(
        f"reference server: ws://{base}{WS_PATH}\n"
        f"  health:  http://{base}/health\n  metrics: http://{base}/api/dashboard/metrics/websockets\n"
        f"  api:     http://{base}/docs",
        flush=True,
    )
    runner.run()
    return 0


def uvicorn_config(settings: Settings, app: Any) -> uvicorn.Config:
    """uvicorn's configuration for `app` (from `create_app(settings)`) under `settings`."""
    # httptools and websockets-sansio, with the request head bounded in bytes and time.
    http, ws = protocols(settings, app.state.server.metrics)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=http,
        ws=ws,
        # Frames past this are refused by the transport with 1009; frames between
        # max_inbound_message_bytes and this get an `error` frame instead.
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=settings.per_message_deflate,
        access_log=False,
        # No log config of uvicorn's own (plain-text handlers): its loggers propagate to
        # the JSON root handler of `configure_logging`, rate-limited per kind of record.
        log_config=None,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 1,
    )


if __name__ == "__main__":
    sys.exit(main())
