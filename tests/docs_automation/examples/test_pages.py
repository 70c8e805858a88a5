"""The page run: a page's steps as one script, the ports it names, and a run that fails."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from docs_automation.errors import BlockError
from docs_automation.examples.fences import scan
from docs_automation.examples.pages import (
    busy_ports,
    page_ports,
    page_script,
    reader_env,
    refresh_project,
    run_page,
)

PAGE = """# A how-to

<!-- example: prerequisites -->
```bash
python -m reference_server &
curl -fsS --retry 30 http://127.0.0.1:8000/health
```

```ts
const url = "ws://127.0.0.1:9999/";
```

```console
$ redis-cli -p 6390 ping
PONG
```

```py
print("hi")
#> hi
```

```json
{"type": "ping"}
```
"""


@pytest.mark.unit
def test_the_script_runs_steps_in_order_as_written() -> None:
    script = page_script(scan("how-to/p.md", PAGE), Path("."))
    assert script.index("reference_server &") < script.index("redis-cli -p 6390 ping")
    assert script.index("redis-cli") < script.index("python - <<'HIVE_EXAMPLE_EOF'")
    assert "127.0.0.1:8000/health" in script  # nothing rewritten
    assert "PONG" not in script  # a console block's output is not a command
    assert "9999" not in script and '"ping"' not in script  # ts and data are not steps
    assert "@@hive-step how-to/p.md:4 " in script


@pytest.mark.unit
def test_the_script_moves_ports_when_asked() -> None:
    script = page_script(scan("how-to/p.md", PAGE), Path("."), {8000: 41000})
    assert "127.0.0.1:41000/health" in script


@pytest.mark.unit
def test_page_ports_are_the_ones_its_steps_name() -> None:
    assert page_ports(scan("how-to/p.md", PAGE), Path(".")) == {8000, 6390}


@pytest.mark.integration
def test_a_port_in_use_is_busy() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert busy_ports([port]) == [port]


@pytest.mark.integration
def test_a_failing_step_is_named_with_the_output_tail(tmp_path: Path) -> None:
    page = "```bash\necho first\n```\n\n```bash\necho boom >&2\nexit 3\n```\n"
    env = reader_env(os.environ, tmp_path / "home")
    with pytest.raises(BlockError, match=r"(?s)failed in how-to/p\.md:5 \(exit 3\).*boom"):
        run_page(
            scan("how-to/p.md", page),
            root=tmp_path,
            project=tmp_path,
            work=tmp_path / "work",
            env=env,
            timeout=30,
        )


@pytest.mark.integration
def test_a_page_that_passes_is_timed_step_by_step(tmp_path: Path) -> None:
    page = "```bash\necho one\n```\n\n```console\n$ echo two\ntwo\n```\n"
    env = reader_env(os.environ, tmp_path / "home")
    run = run_page(
        scan("how-to/p.md", page),
        root=tmp_path,
        project=tmp_path,
        work=tmp_path / "work",
        env=env,
        timeout=30,
    )
    assert [step for step, _ in run.steps] == ["how-to/p.md:1", "how-to/p.md:5"]
    assert run.seconds >= 0


@pytest.mark.integration
def test_refresh_keeps_the_venv_and_drops_leftovers(tmp_path: Path) -> None:
    root, copy = tmp_path / "root", tmp_path / "copy"
    root.mkdir()
    (root / "a.txt").write_text("new")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (copy / ".venv").mkdir(parents=True)
    (copy / ".venv" / "marker").write_text("kept")
    (copy / "a.txt").write_text("old")
    (copy / "left-over").mkdir()
    refresh_project(root, copy)
    assert (copy / ".venv" / "marker").read_text() == "kept"
    assert (copy / "a.txt").read_text() == "new"
    assert not (copy / "left-over").exists()


@pytest.mark.unit
def test_the_reader_env_has_no_settings_and_no_hidden_venv(tmp_path: Path) -> None:
    environ = {"PATH": "/venv/bin:/usr/bin", "WS_PORT": "1", "REDIS_URL": "x", "VIRTUAL_ENV": "v"}
    env = reader_env(environ, tmp_path / "home", hide=["/venv/bin"])
    assert env["PATH"] == "/usr/bin"
    assert not {"WS_PORT", "REDIS_URL", "VIRTUAL_ENV"} & set(env)
    assert env["HOME"] == str(tmp_path / "home")
