"""Running the docs' program blocks for real: shell scripts, console sessions, JS/TS, Python.

Each runner takes the block's text (already pointed at the server under test), runs it in a
child process with a time limit, and raises `BlockError` with the tail of its output when it
fails. Console blocks also compare each command's output with the page, where `...` stands
for any text (timestamps, ids).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import BlockError
from ..processes import LOG_TAIL_CHARS

__all__ = [
    "DEFAULT_PORT",
    "background_ports",
    "console_pairs",
    "output_matches",
    "print_check",
    "rewrite",
    "run_console",
    "run_script",
    "run_shell",
]

DEFAULT_PORT = 8000
"""The port every page's URLs use: the PWA's development port."""
_PORT = re.compile(
    r"(?P<pre>(?:127\.0\.0\.1|localhost):|--port[ =]|-p |WS_PORT=)(?P<port>\d{2,5})\b"
)
_MARK = "@@hive-console-{}@@"


def rewrite(text: str, ports: dict[int, int]) -> str:
    """`text` with every port of `ports` replaced where it is written as an address."""

    def swap(m: re.Match[str]) -> str:
        port = int(m["port"])
        return m["pre"] + str(ports.get(port, port))

    return _PORT.sub(swap, text)


def background_ports(body: str) -> set[int]:
    """Ports that the block's background commands (`cmd &`) listen on.

    A command names its port as an address or `--port`; a reference server started without
    one listens on the default port.
    """
    ports: set[int] = set()
    for line in body.splitlines():
        command = line.strip().removeprefix("$ ")
        if not command.endswith("&") or command.endswith("&&") or command.startswith("#"):
            continue
        named = {int(m["port"]) for m in _PORT.finditer(command)}
        if not named and "reference_server" in command:
            named = {DEFAULT_PORT}
        ports |= named
    return ports


def _tail(text: str) -> str:
    return text[-LOG_TAIL_CHARS:].strip() or "(no output)"


def run_shell(script: str, cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run `script` with bash (`-euo pipefail`); return a summary, raise when it fails."""
    try:
        proc = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + script],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BlockError(f"still running after {timeout} s") from None
    if proc.returncode != 0:
        raise BlockError(f"exited {proc.returncode}:\n{_tail(proc.stdout + proc.stderr)}")
    lines = [line for line in script.splitlines() if line.strip()]
    return f"ran {len(lines)} line(s), exit 0"


def console_pairs(body: str) -> list[tuple[str, str]]:
    """A console block as `(command, expected output)` pairs (`$ ` starts a command)."""
    pairs: list[tuple[str, list[str]]] = []
    continued = False
    for line in body.splitlines():
        if continued and pairs:
            command, out = pairs[-1]
            pairs[-1] = (command + "\n" + line, out)
        elif line.startswith("$ "):
            pairs.append((line[2:], []))
        elif pairs:
            pairs[-1][1].append(line)
        else:
            raise BlockError(f"console output before any `$ ` command: {line!r}")
        continued = line.endswith("\\")
    return [(command, "\n".join(out)) for command, out in pairs]


def output_matches(expected: str, actual: str) -> bool:
    """Whether `actual` is `expected` line for line, `...` matching any text.

    Trailing spaces and blank lines at either end do not count. An empty expectation
    matches anything: the page shows no output for that command.
    """
    if not expected.strip():
        return True
    lines = expected.strip("\n").splitlines()
    pattern = "\n".join(re.escape(ln.rstrip()).replace(r"\.\.\.", ".*?") for ln in lines)
    got = "\n".join(ln.rstrip() for ln in actual.strip("\n").splitlines())
    return re.fullmatch(pattern, got, re.S) is not None


def run_console(body: str, cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run a console block's commands in one shell; check each one's exit and output."""
    pairs = console_pairs(body)
    script = ["set -uo pipefail"]
    for i, (command, _) in enumerate(pairs):
        script += [f"echo '{_MARK.format(i)}'", command, "rc=$?", '[ "$rc" -eq 0 ] || exit "$rc"']
    try:
        proc = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BlockError(f"still running after {timeout} s") from None
    chunks = re.split(r"^@@hive-console-\d+@@\n", proc.stdout, flags=re.M)[1:]
    if proc.returncode != 0:
        failed = pairs[len(chunks) - 1][0] if chunks else "?"
        raise BlockError(
            f"`{failed}` exited {proc.returncode}:\n{_tail(chunks[-1] if chunks else '')}"
        )
    for (command, expected), actual in zip(pairs, chunks, strict=True):
        if not output_matches(expected, actual):
            raise BlockError(
                f"`{command}` printed:\n{_tail(actual)}\nbut the page shows:\n{expected}"
            )
    return f"{len(pairs)} command(s), output as shown"


def run_script(kind: str, source: str, root: Path, timeout: float) -> str:
    """Type-check a `ts`/`js` block with tsc, then run it with node (`ws` as `WebSocket`).

    Blocks are written for the browser, so the browser's `WebSocket` global is the `ws`
    package here, and `fetch` is Node's own. Types come from `docs/reference/ws_messages.d.ts`
    (import it as `./ws_messages`).
    """
    scratch = root / ".hive" / "examples"  # under root, so node finds root/node_modules
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=scratch))
    try:
        name = "example.ts" if kind == "ts" else "example.js"
        (work / name).write_text(source)
        (work / "package.json").write_text('{"type": "module"}\n')
        types = root / "docs" / "reference" / "ws_messages.d.ts"
        if types.is_file():
            shutil.copy(types, work / "ws_messages.d.ts")
        options = {
            "strict": kind == "ts",
            "target": "es2022",
            "module": "es2022",
            "moduleResolution": "bundler",
            "lib": ["es2022", "dom"],
            "types": ["node"],
            "skipLibCheck": True,
            "allowJs": kind == "js",
            "checkJs": kind == "js",
            "outDir": "out",
        }
        config = {"compilerOptions": options, "files": [name]}
        (work / "tsconfig.json").write_text(json.dumps(config))
        (work / "prelude.cjs").write_text('globalThis.WebSocket = require("ws");\n')
        tsc = root / "node_modules" / ".bin" / "tsc"
        if not tsc.exists():
            raise BlockError(f"{tsc} is missing; run scripts/bootstrap")
        env = {**os.environ, "NO_COLOR": "1"}
        steps = [
            ("tsc", [str(tsc), "-p", "."]),
            ("node", ["node", "--require", "./prelude.cjs", "out/example.js"]),
        ]
        for step, argv in steps:
            try:
                proc = subprocess.run(
                    argv, cwd=work, env=env, capture_output=True, text=True, timeout=timeout
                )
            except subprocess.TimeoutExpired:
                raise BlockError(f"{step} still running after {timeout} s") from None
            if proc.returncode != 0:
                raise BlockError(
                    f"{step} exited {proc.returncode}:\n{_tail(proc.stdout + proc.stderr)}"
                )
        return f"{kind}: type-checked (strict={kind == 'ts'}) and ran with node, exit 0"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_check(path: str) -> None:
    """Run one Python example file and check its `#>` output like pytest-examples does.

    Runs in a child process of `python -m docs_automation examples`; exits 1 with the
    difference when the printed output is not the one written in the example.
    """
    from _pytest.outcomes import Failed
    from pytest_examples.config import ExamplesConfig
    from pytest_examples.find_examples import CodeExample
    from pytest_examples.run_code import run_code

    file = Path(path)
    example = CodeExample.create(file.read_text(encoding="utf-8"), path=file)
    insert_print, _ = run_code(
        example=example,
        python_file=file,
        loader=None,
        config=ExamplesConfig(),
        enable_print_mock=True,
        print_callback=None,
        include_print=None,
        module_globals=None,
        call=None,
    )
    try:
        insert_print.check_print_statements(example)
    except Failed as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
