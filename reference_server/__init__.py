"""The Agent Hive dashboard reference server: the protocol, hardened, on FastAPI and uvicorn.

Start it with `python -m reference_server`, or build the ASGI app with `create_app`.
The brokers (`MemoryBroker`, `RedisBroker` and what they carry) are `reference_server.broker`'s
surface; each public name is exported from one package only.
"""

from __future__ import annotations

from .app import WS_PATH, create_app
from .errors import (
    BrokerUnavailable,
    DataRequestError,
    FrameError,
    HiveError,
    LimitsError,
    PayloadTooLarge,
    PublishError,
    SettingsError,
)
from .session import Session
from .settings import Settings

__all__ = [
    "WS_PATH",
    "BrokerUnavailable",
    "DataRequestError",
    "FrameError",
    "HiveError",
    "LimitsError",
    "PayloadTooLarge",
    "PublishError",
    "Session",
    "Settings",
    "SettingsError",
    "create_app",
]
