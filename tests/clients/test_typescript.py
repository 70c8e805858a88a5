"""The TypeScript client package (`clients/typescript/`): it builds with strict tsc, its node
tests pass against real reference servers, and it stays under its size floor."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.procs import ROOT, ServerProcess, start_server

PACKAGE = ROOT / "clients" / "typescript"
#: The issue's floor: the package minified and gzipped, in bytes.
SIZE_FLOOR_BYTES = 10 * 1024
#: Longest the package's whole node test run may take, in seconds.
NODE_TESTS_TIMEOUT_SECONDS = 180.0
AUTH_TOKEN = "client-test-token"


def _run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run `argv` in the package; fail the test with its output when it exits non-zero."""
    try:
        proc = subprocess.run(
            argv,
            cwd=PACKAGE,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{argv[0]} still running after {timeout} s:\n{exc.stdout!s}")
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def build_package() -> None:
    """Compile the package with its strict tsconfig (fails the test on any type error)."""
    _run([str(ROOT / "node_modules" / ".bin" / "tsc"), "-p", "."], timeout=120)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """An open server and one that requires `AUTH_TOKEN`."""
    build_package()
    plain = start_server()
    secured = start_server({"WS_AUTH_REQUIRED": "true", "WS_AUTH_TOKEN": AUTH_TOKEN})
    yield plain, secured
    plain.stop()
    secured.stop()


@pytest.mark.integration
def test_node_tests_pass_against_real_servers(servers: tuple[ServerProcess, ServerProcess]) -> None:
    plain, secured = servers
    env = {
        "HIVE_WS_URL": plain.ws,
        "HIVE_HTTP_URL": plain.http,
        "HIVE_AUTH_WS_URL": secured.ws,
        "HIVE_AUTH_TOKEN": AUTH_TOKEN,
    }
    out = _run(["node", "--test", "--test-reporter=spec"], NODE_TESTS_TIMEOUT_SECONDS, env)
    assert "fail 0" in out, out
    assert "pass 0" not in out, out


@pytest.mark.integration
def test_package_is_under_ten_kilobytes_minified_and_gzipped() -> None:
    build_package()
    esbuild = shutil.which("esbuild", path=str(ROOT / "node_modules" / ".bin"))
    assert esbuild, "esbuild is missing; run scripts/bootstrap"
    bundle = subprocess.run(
        [esbuild, "dist/index.js", "--bundle", "--minify", "--format=esm"],
        cwd=PACKAGE,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    size = len(gzip.compress(bundle, compresslevel=9))
    print(f"client package: {len(bundle)} bytes minified, {size} bytes gzipped")
    assert 1000 < size < SIZE_FLOOR_BYTES, size
