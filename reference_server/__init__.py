"""The Agent Hive dashboard reference server: the protocol, hardened, on FastAPI and uvicorn.

Start it with `python -m reference_server`, or build the ASGI app with `create_app`.
"""

from __future__ import annotations

from .app import WS_PATH, create_app
from .broker import Broker, BrokerStatus, History, MemoryBroker, Update
from .errors import (
    BrokerUnavailable,
    DataRequestError,
    FrameError,
    HiveError,
    PublishError,
    SettingsError,
)
from .redis_broker import RedisBroker
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
    "PublishError",
    "RedisBroker",
    "Session",
    "Settings",
    "SettingsError",
    "Update",
    "create_app",
]
