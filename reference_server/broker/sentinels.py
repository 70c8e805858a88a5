"""Asking Redis Sentinels which node is the primary: every one at once, each bounded.

redis-py's `Sentinel.discover_master` asks the Sentinels one after another and stops at the
first error that is not a connection error or a timeout: an entry that answers with an
error (a plain Redis listed by mistake: `unknown command 'SENTINEL'`; an ACL refusal;
`NOAUTH`) hides every Sentinel after it, and each hung one costs a full socket timeout
before the next is asked. `Sentinels.primary` asks them all concurrently, takes the first
valid answer, skips any error, and names the entries that failed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError
from redis.backoff import NoBackoff

__all__ = ["Sentinels"]

# `/health` and the logs show each failed entry's error truncated to this many characters.
_ERROR_CHARS = 120


class Sentinels:
    """The Sentinels of one deployment, asked for the primary of one master name.

    Args:
        addresses: `(host, port)` of every Sentinel, in the order configured.
        master: the master name they monitor.
        timeout: seconds one query may take (connect included), per Sentinel.
        connection_kwargs: more redis-py connection arguments for every Sentinel
            (password, TLS).
    """

    def __init__(
        self,
        addresses: Sequence[tuple[str, int]],
        master: str,
        *,
        timeout: float,
        connection_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.master = master
        self.timeout = timeout
        self._clients = {
            f"{host}:{port}": Redis(
                host=host,
                port=port,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                decode_responses=True,
                protocol=2,
                **(connection_kwargs or {}),
            )
            for host, port in addresses
        }
        self.failed: dict[str, str] = {}
        """Entries that failed the last query: `host:port` -> the error (for `/health`)."""

    async def primary(self) -> tuple[str, int]:
        """The primary's `(host, port)` as the first Sentinel to answer validly names it.

        Every Sentinel is asked at once; the whole query takes at most `timeout` seconds.
        An answer is valid when it names the master as up (`is_master`, neither subjectively
        nor objectively down), as redis-py's `check_master_state` requires.

        Raises:
            MasterNotFoundError: no Sentinel answered validly in time; the message names
                each entry and its error (also kept in `failed`).
        """
        failed: dict[str, str] = {}
        tasks = {
            asyncio.ensure_future(self._ask(client)): name for name, client in self._clients.items()
        }
        found: tuple[str, int] | None = None
        try:
            for next_done in asyncio.as_completed(tasks, timeout=self.timeout):
                try:
                    found = await next_done
                except TimeoutError:
                    break
                except Exception as exc:  # any error: a wrong entry must not hide the rest
                    failed[_name_of(exc)] = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
                    continue
                break
        finally:
            loop = asyncio.get_running_loop()
            for task, name in tasks.items():
                if found is not None and not task.done():
                    # Slower than the one that answered is no failure, but an error it ends
                    # with (within the timeout) still names a wrong entry in `failed`.
                    task.add_done_callback(functools.partial(_record, failed))
                    loop.call_later(self.timeout, task.cancel)
                    continue
                if task.done():
                    _record(failed, task)
                else:
                    task.cancel()
                    failed.setdefault(name, f"no answer within {self.timeout:g} s")
                task.add_done_callback(_retrieve)
        self.failed = failed
        if found is None:
            listed = "; ".join(f"{name}: {error}" for name, error in sorted(failed.items()))
            raise MasterNotFoundError(f"No master found for {self.master!r}: {listed}")
        return found

    async def _ask(self, client: Redis) -> tuple[str, int]:
        try:
            masters: Any = await client.sentinel_masters()
        except Exception as exc:
            exc.add_note(_entry(client))
            raise
        state = masters.get(self.master) if isinstance(masters, dict) else None
        if not state or not state["is_master"] or state["is_sdown"] or state["is_odown"]:
            error = LookupError(f"does not name {self.master!r} as an up primary")
            error.add_note(_entry(client))
            raise error
        return str(state["ip"]), int(state["port"])

    async def aclose(self) -> None:
        """Close every Sentinel connection."""
        for client in self._clients.values():
            await client.aclose()


def _entry(client: Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs['host']}:{kwargs['port']}"


def _name_of(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", None) or []
    return str(notes[-1]) if notes else "?"


def _record(failed: dict[str, str], task: asyncio.Future[Any]) -> None:
    """Note in `failed` the error `task` ended with, if any (not a cancellation)."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, asyncio.CancelledError):
        failed[_name_of(exc)] = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
