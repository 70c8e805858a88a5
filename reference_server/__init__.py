"""The Agent Hive dashboard reference server: the protocol, hardened, on FastAPI and uvicorn.

Start it with `python -m reference_server`, or build the ASGI app with `create_app`.
The brokers live in `reference_server.broker`; the most used are re-exported here.
"""

from __future__ import annotations

from .app import WS_PATH, create_app
from .broker import Broker, BrokerStatus, History, MemoryBroker, RedisBroker, Update
from .errors import (
    BrokerUnavailable,
    DataRequestError,
    FrameError,
    HiveError,
    PayloadTooLarge,
    PublishError,
    SettingsError,
)
from .session import Session
from .settings import Settings

__all__ = [
    "WS_PATH",
    "Broker",
    "BrokerStatus",
    "BrokerUnavailable",
    "DataRequestError",
    "FrameError",
    "History",
    "HiveError",
    "MemoryBroker",
    "PayloadTooLarge",
    "PublishError",
    "RedisBroker",
    "Session",
    "Settings",
    "SettingsError",
    "Update",
    "create_app",
]
