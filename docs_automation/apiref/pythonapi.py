"""The Python API page (`docs/reference/python-api.md`): each package's `__all__`, via griffe.

The public surface is exactly the names listed in the `__all__` of each package's
`__init__.py` (as in httpx and griffe); a module's own `__all__` does not count. Packages
are found by walking the source, so a new subpackage with a non-empty `__all__` appears
without a change here. Each name is documented once, under the package path it is
re-exported from. The page opens with an index of every name's signature (so a changed
signature makes the committed page stale) and then hands each name to mkdocstrings with a
`:::` identifier, which renders its docstring at build time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import griffe

from .generator import Rendered
from .markdown import banner, code, table

__all__ = [
    "PACKAGES",
    "PAGE",
    "PublicName",
    "page",
    "public_names",
    "render",
    "signature",
    "undocumented",
]

PAGE = "docs/reference/python-api.md"
"""Where the page goes, relative to the repository root."""

PACKAGES = ("reference_server", "docs_automation")
"""The top-level packages walked for subpackages; each package with an `__all__` counts."""


@dataclass(frozen=True)
class PublicName:
    """One name in a package's `__all__`.

    Attributes:
        module: the dotted path of the package whose `__init__` lists it.
        name: the name as listed.
        target: the dotted path of the object's definition (differs for re-exports).
        kind: griffe's kind: `module`, `class`, `function` or `attribute`.
        signature: the name's signature in Python syntax.
        summary: the first line of its docstring; empty when it has none.
    """

    module: str
    name: str
    target: str
    kind: str
    signature: str
    summary: str

    @property
    def identifier(self) -> str:
        """The public dotted path: the package, then the name (`docs_automation.main`)."""
        return f"{self.module}.{self.name}"


def _params(obj: griffe.Function | griffe.Class) -> str:
    out = []
    star = False
    for p in obj.parameters:
        if p.name in ("self", "cls"):
            continue
        kind = p.kind
        if kind is griffe.ParameterKind.keyword_only and not star:
            out.append("*")
        star = star or kind in (
            griffe.ParameterKind.keyword_only,
            griffe.ParameterKind.var_positional,
        )
        prefix = {"variadic positional": "*", "variadic keyword": "**"}.get(kind.value, "")
        text = prefix + p.name + (f": {p.annotation}" if p.annotation is not None else "")
        if p.default is not None and not prefix:
            text += f" = {p.default}" if p.annotation is not None else f"={p.default}"
        out.append(text)
    return ", ".join(out)


def signature(obj: griffe.Object) -> str:
    """The object's signature in Python syntax (functions, classes, attributes)."""
    if isinstance(obj, griffe.Function):
        returns = f" -> {obj.returns}" if obj.returns is not None else ""
        return f"{obj.name}({_params(obj)}){returns}"
    if isinstance(obj, griffe.Class):
        if "__init__" in obj.all_members:  # how to construct it says more than its bases
            return f"class {obj.name}({_params(obj)})"
        bases = f"({', '.join(map(str, obj.bases))})" if obj.bases else ""
        return f"class {obj.name}{bases}"
    if isinstance(obj, griffe.Attribute):
        annotation = f": {obj.annotation}" if obj.annotation is not None else ""
        value = f" = {obj.value}" if obj.annotation is None and obj.value is not None else ""
        return f"{obj.name}{annotation}{value}"
    return obj.name


def _packages(module: griffe.Module) -> Iterator[griffe.Module]:
    """`module` and every package below it, in path order."""
    yield module
    for sub in sorted(module.modules.values(), key=lambda m: m.path):
        if not sub.is_alias and isinstance(sub, griffe.Module) and sub.is_init_module:
            yield from _packages(sub)


def public_names(root: Path, packages: Sequence[str] = PACKAGES) -> list[PublicName]:
    """Every name in the `__all__` of `packages` and their subpackages, read under `root`.

    Args:
        root: the folder the packages are loaded from (as source, never imported).
        packages: the top-level packages to walk.

    Returns:
        The names, package by package (in path order), each in its `__all__` order.
    """
    loader = griffe.GriffeLoader(search_paths=[str(root)], docstring_parser=griffe.Parser.google)
    out = []
    for package in packages:
        loader.load(package)
    loader.resolve_aliases(implicit=False, external=False)
    for package in packages:
        for module in _packages(loader.modules_collection[package]):
            for name in module.exports or ():
                member = module[str(name)]
                obj = member.final_target if member.is_alias else member
                doc = obj.docstring.value.strip() if obj.docstring else ""
                out.append(
                    PublicName(
                        module.path,
                        str(name),
                        obj.path,
                        obj.kind.value,
                        signature(obj),
                        doc.split("\n", 1)[0],
                    )
                )
    return out


def undocumented(names: Sequence[PublicName]) -> list[str]:
    """Dotted paths of the public names that have no docstring, sorted."""
    return sorted({n.target for n in names if not n.summary})


def _directive(path: str) -> str:
    # heading_level 3: each name sits under its package's `##` heading.
    return f"::: {path}\n    options:\n      show_root_heading: true\n      heading_level: 3\n"


def page(names: Sequence[PublicName]) -> str:
    """The page's Markdown for `names`: the index, then one `:::` block per name."""
    index = [
        (code(n.identifier), code(n.signature), n.summary or "**undocumented**") for n in names
    ]
    out = [
        banner("apiref", "the `__all__` of every package's `__init__`, read with griffe"),
        "\n# Python API\n\nThe public names of `reference_server` and `docs_automation`: "
        "exactly what each package's `__init__` lists in `__all__`, imported from that "
        "package. Every other module is internal and may change without notice.\n\n"
        "## Index\n\n",
        table(("Name", "Signature", "Summary"), index),
    ]
    for package in dict.fromkeys(n.module for n in names):
        out.append(f"\n## {package}\n\n")
        out.extend(_directive(n.identifier) + "\n" for n in names if n.module == package)
    return "".join(out).rstrip() + "\n"


def render(root: Path) -> Rendered:
    """The Python API page for the packages under `root`."""
    return {PAGE: page(public_names(root))}
