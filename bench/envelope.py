"""The update frame the two baseline servers send, shaped like the reference server's.

The baselines wrap each published payload in the same fields as ours (`type`,
`correlation_id`, `timestamp`, `subscription`, `data`, `seq`), encoded once per broadcast, so
every server under test puts the same bytes on the wire and the comparison measures the
servers, not the frame sizes.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

__all__ = ["update_frame"]


def update_frame(data: Any, seq: int) -> str:
    """Encode one `agent_update` frame carrying `data` as update number `seq`."""
    stamp = datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(
        {
            "type": "agent_update",
            "correlation_id": str(uuid.uuid4()),
            "timestamp": stamp,
            "subscription": "agents",
            "data": data,
            "seq": seq,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
