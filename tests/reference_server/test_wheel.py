"""A built wheel, installed in a fresh virtual environment, serves the protocol on its own.

`python -m build` makes the sdist and, from it, the wheel; `pip install` puts it in a new
venv; the server then runs from a folder outside the source tree, so nothing can come from
the checkout: the frame schema must be inside the package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import venv
from pathlib import Path

import pytest
from websockets.sync.client import connect

from docs_automation import processes
from tests.procs import ROOT, WS_PATH

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("wheel")]

#: Longest the build and the install may each take, in seconds (pip resolves every dependency).
INSTALL_TIMEOUT_SECONDS = 300
#: Longest the installed server may take to answer /health, in seconds.
READY_TIMEOUT_SECONDS = 30


def _run(argv: list[str], cwd: Path) -> None:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False
    )
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{(done.stdout + done.stderr)[-3000:]}"


@pytest.mark.timeout(900)
def test_the_wheel_serves_the_protocol_with_the_schema_inside(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], cwd=tmp_path)
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", str(wheels[0])], cwd=tmp_path)

    # Where the server's code comes from: the venv, never the checkout.
    where = subprocess.run(
        [str(python), "-c", "import reference_server, sys; print(reference_server.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(env_dir)), where

    port = processes.free_port()
    server = processes.start(
        [str(env_dir / "bin" / "hive-reference-server"), "--port", str(port)],
        cwd=tmp_path,
        log=tmp_path / "server.log",
    )
    try:
        processes.wait_ready(
            server,
            timeout=READY_TIMEOUT_SECONDS,
            url=f"http://127.0.0.1:{port}/health",
            log=tmp_path / "server.log",
            what="the installed server",
        )
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/dashboard/websocket/contract", timeout=10
        ) as answer:
            contract = json.load(answer)
        shipped = json.loads((ROOT / "schemas" / "ws_messages.schema.json").read_text())
        assert contract["current_version"] == shipped["x-contract-version"]
        with connect(f"ws://127.0.0.1:{port}{WS_PATH}", open_timeout=10) as ws:
            welcome = json.loads(ws.recv(timeout=10))
            assert welcome["type"] == "connection_established"
            ws.send(json.dumps({"type": "ping", "correlation_id": "wheel-1"}))
            pong = json.loads(ws.recv(timeout=10))
            assert (pong["type"], pong["correlation_id"]) == ("pong", "wheel-1")
    finally:
        processes.stop(server)
