"""The `diagrams` command: the architecture page, drawn from the real import graph.

Every module of our packages is a node, labelled with the first line of its docstring (its
role), inside a box for its folder; every import between two of them is an arrow. Imports
are read with `ast`, so the diagram shows what the code does, not what someone remembered.
Names imported from a package are followed to the submodule that package re-exports them
from, and the command modules a `COMMANDS` table loads by name are drawn as dashed arrows.
Below the diagram, a table per folder gives each module's role, so a newcomer can say what
every module holds.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .generator import Rendered, add_generator, read_text
from .markdown import banner, code, fence, table

__all__ = [
    "FILE_CALLS",
    "IO_KINDS",
    "LABEL_MAX_CHARS",
    "PACKAGES",
    "PAGE",
    "Module",
    "import_graph",
    "page",
    "register",
]

PAGE = "docs/reference/architecture.md"
"""Where the page goes, relative to the repository root."""

PACKAGES = ("reference_server", "docs_automation")
"""The packages drawn, each as a subgraph."""

LABEL_MAX_CHARS = 48
"""Longest role shown inside a diagram node; the table below the diagram has the full text."""

IO_KINDS: dict[str, frozenset[str]] = {
    "network": frozenset(
        {
            "socket",
            "urllib.request",
            "http.client",
            "http.server",
            "redis",
            "uvicorn",
            "fastapi",
            "starlette",
            "websockets",
            "playwright",
        }
    ),
    "processes": frozenset({"subprocess", "multiprocessing", "concurrent.futures"}),
    "logs": frozenset({"logging", "structlog"}),
    "async": frozenset({"asyncio"}),
}
"""What a module must import (top-level package or module) to reach each kind of I/O."""

FILE_CALLS = frozenset(
    {
        "read_text",
        "write_text",
        "read_bytes",
        "write_bytes",
        "mkdir",
        "unlink",
        "rmtree",
        "rglob",
        "iterdir",
        "copyfile",
    }
)
"""File methods: a module calling one (or the builtin `open`) does `files` I/O."""


@dataclass
class Module:
    """One module of the graph.

    Attributes:
        name: dotted module path (`reference_server.app`).
        role: the first line of its docstring, empty when it has none.
        imports: the modules of our packages it imports.
        loads: the modules it loads by name at run time (dashed arrows).
        folder: the package it sits in (a package's `__init__` sits in itself).
        io: the kinds of I/O its code reaches (keys of `IO_KINDS`); empty: pure.
    """

    name: str
    role: str
    folder: str = ""
    imports: set[str] = field(default_factory=set)
    loads: set[str] = field(default_factory=set)
    io: set[str] = field(default_factory=set)


def _module_name(package_dir: Path, path: Path) -> str:
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _reexports(tree: ast.Module, package: str) -> dict[str, str]:
    """Name to submodule, for the names a package's `__init__` imports from its submodules."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                out[alias.asname or alias.name] = f"{package}.{node.module}"
    return out


def _targets(node: ast.ImportFrom, current: str, is_package: bool) -> list[tuple[str, str]]:
    """(module, imported name) pairs of a `from ... import` statement, made absolute."""
    if node.level:
        base = current.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [(prefix, alias.name) for alias in node.names]


def _commands(tree: ast.Module, package: str) -> list[str]:
    """The modules a `COMMANDS` table names: a dict's values (dotted paths), or a tuple's
    items (modules of `package`)."""
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name) and target.id == "COMMANDS" and node.value:
                value = ast.literal_eval(node.value)
                if isinstance(value, dict):
                    return [str(v) for v in value.values()]
                return [f"{package}.{v}" for v in value]
    return []


def import_graph(root: Path, packages: Sequence[str] = PACKAGES) -> dict[str, Module]:
    """Every module of `packages` under `root`, with its role and its imports among them."""
    trees: dict[str, tuple[ast.Module, bool]] = {}
    for package in packages:
        package_dir = root / package
        for path in sorted(package_dir.rglob("*.py")):
            tree = ast.parse(read_text(path), filename=str(path))
            trees[_module_name(package_dir, path)] = (tree, path.name == "__init__.py")
    reexports = {n: _reexports(tree, n) for n, (tree, is_package) in trees.items() if is_package}
    graph = {}
    for name, (tree, is_package) in trees.items():
        doc = ast.get_docstring(tree) or ""
        folder = name if is_package else name.rsplit(".", 1)[0]
        module = Module(name, doc.strip().split("\n", 1)[0], folder=folder)
        for node in ast.walk(tree):
            pairs: list[tuple[str, str]] = []
            if isinstance(node, ast.ImportFrom):
                pairs = _targets(node, name, is_package)
            elif isinstance(node, ast.Import):
                pairs = [(alias.name, "") for alias in node.names]
            elif isinstance(node, ast.Call):
                # `open(...)` the builtin, or a file method (`path.read_text()`); an
                # attribute `.open()` is left out: `link.open()` is a Redis session.
                called = node.func
                if (isinstance(called, ast.Name) and called.id == "open") or (
                    isinstance(called, ast.Attribute) and called.attr in FILE_CALLS
                ):
                    module.io.add("files")
            module.io |= _io_kinds(pairs)
            for target, imported in pairs:
                for candidate in (
                    f"{target}.{imported}",
                    reexports.get(target, {}).get(imported),
                    target,
                ):
                    if candidate in trees and candidate != name:
                        module.imports.add(candidate)
                        break
        module.loads = set(_commands(tree, folder)) & set(trees)
        graph[name] = module
    return graph


def _io_kinds(pairs: Sequence[tuple[str, str]]) -> set[str]:
    """The kinds of I/O that importing `pairs` (module, name) gives access to."""
    found = set()
    for target, imported in pairs:
        candidates = {target, f"{target}.{imported}", target.split(".", 1)[0]}
        found |= {kind for kind, modules in IO_KINDS.items() if candidates & modules}
    return found


def _node_id(name: str) -> str:
    return name.replace(".", "_")


def _label(module: Module) -> str:
    short = module.name.rsplit(".", 1)[-1] if "." in module.name else module.name
    role = module.role.replace("`", "")
    if len(role) > LABEL_MAX_CHARS:
        role = role[:LABEL_MAX_CHARS].rsplit(" ", 1)[0] + "…"
    # Mermaid reads < > as HTML and " as the label's end: use its entity codes instead.
    role = role.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    return f"{short}<br/><small>{role}</small>" if role else short


def _folders(graph: dict[str, Module], packages: Sequence[str] | None) -> list[str]:
    """The folders of `packages` (default: all) that hold a module of `graph`, sorted."""
    found = {m.folder for m in graph.values()}
    if packages is None:
        return sorted(found)
    return sorted(f for f in found if any(f == p or f.startswith(p + ".") for p in packages))


def _short(name: str, folder: str) -> str:
    return name[len(folder) + 1 :] if name.startswith(folder + ".") else name.rsplit(".", 1)[-1]


def overview(graph: dict[str, Module], packages: Sequence[str] | None = None) -> str:
    """The folders as a Mermaid flowchart: an arrow where a module of one imports (or, dashed,
    loads by name) a module of another, labelled with how many such imports there are."""
    folders = _folders(graph, packages)
    lines = ["flowchart LR"]
    lines += [f'    {_node_id(f)}_pkg["{f}"]' for f in folders]
    solid: dict[tuple[str, str], int] = {}
    dashed: set[tuple[str, str]] = set()
    for module in graph.values():
        for target in module.imports:
            pair = (module.folder, graph[target].folder)
            if pair[0] != pair[1] and pair[1] in folders and pair[0] in folders:
                solid[pair] = solid.get(pair, 0) + 1
        for target in module.loads:
            pair = (module.folder, graph[target].folder)
            if pair[0] != pair[1] and pair[1] in folders and pair[0] in folders:
                dashed.add(pair)
    for (source, target), count in sorted(solid.items()):
        lines.append(f"    {_node_id(source)}_pkg -- {count} --> {_node_id(target)}_pkg")
    for source, target in sorted(dashed - set(solid)):
        lines.append(f"    {_node_id(source)}_pkg -.-> {_node_id(target)}_pkg")
    return "\n".join(lines)


def mermaid(graph: dict[str, Module], packages: Sequence[str] | None = None) -> str:
    """The modules as a Mermaid flowchart, one subgraph per folder of `packages` (default:
    every folder), in sorted order; each arrow an import (dashed: loaded by name)."""
    lines = ["flowchart LR"]
    shown = set()
    for folder in _folders(graph, packages):
        lines.append(f"    subgraph {_node_id(folder)}_pkg [{folder}]")
        for name in sorted(n for n in graph if graph[n].folder == folder):
            lines.append(f'        {_node_id(name)}["{_label(graph[name])}"]')
            shown.add(name)
        lines.append("    end")
    for name in sorted(shown):
        lines += [
            f"    {_node_id(name)} --> {_node_id(t)}" for t in sorted(graph[name].imports & shown)
        ]
        lines += [
            f"    {_node_id(name)} -.-> {_node_id(t)}" for t in sorted(graph[name].loads & shown)
        ]
    return "\n".join(lines)


def _io(module: Module) -> str:
    return ", ".join(sorted(module.io)) if module.io else "pure"


def page(graph: dict[str, Module], packages: Sequence[str] | None = None) -> str:
    """The architecture page: the folders at a glance, then per folder a diagram of its
    modules and a table of each module's role, the I/O it reaches and its imports."""
    sections = []
    for folder in _folders(graph, packages):
        names = sorted(n for n in graph if graph[n].folder == folder)
        rows = [
            (
                code(n),
                graph[n].role or "**no docstring**",
                _io(graph[n]),
                ", ".join(code(i) for i in sorted(graph[n].imports)),
            )
            for n in names
        ]
        diagram = ""
        if len(names) > 1:
            diagram = fence("mermaid", mermaid(graph, [folder]), illustrative=False) + "\n"
        sections.append(
            f"\n### {folder}\n\n" + diagram + table(("Module", "Role", "I/O", "Imports"), rows)
        )
    return (
        banner("diagrams", "the import graph of reference_server and docs_automation")
        + "\n# Architecture\n\nEvery folder of `reference_server` and `docs_automation`, "
        "drawn from the code's own import statements. Below, each folder's modules with the "
        "first line of their docstrings (their role) and the imports between them (dashed: "
        "a command module loaded by name). The I/O column is read from the code too: a "
        "module does `network`, `processes` or `logs` I/O itself when it imports a library "
        "for it, `async` when it awaits on the event loop, and `files` when it calls a file "
        "method (`IO_KINDS`, `FILE_CALLS`); `pure` means none of these, so it is tested "
        "with plain values (it may still call a module that does I/O).\n\n"
        + "## Folders\n\nAn arrow is labelled with the number of imports from one folder "
        "into the other.\n\n"
        + fence("mermaid", overview(graph, packages), illustrative=False)
        + "\n## Modules\n\nWhat each module holds, folder by folder.\n"
        + "".join(sections)
    )


def render(root: Path) -> Rendered:
    """The architecture page for the packages under `root`."""
    return {PAGE: page(import_graph(root))}


def register(subcommands: Any) -> None:
    """Add the `diagrams` command to `subcommands` (an argparse subparsers action)."""
    add_generator(
        subcommands,
        "diagrams",
        f"Write the architecture diagram {PAGE} from the import graph (or --check it).",
        [("import graph", render)],
    )
