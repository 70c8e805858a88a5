"""The same `mkdocs.yml` builds on every engine the site may move to, with the same pages.

MkDocs 1.6 + Material 9.8 is the primary engine; ProperDocs 1.6.7 (a maintained MkDocs 1.6
successor, in `.venv`) and Zensical 0.0.73 (Material's team's successor, in `.venv-zensical`)
must build the same configuration strictly, give the same set of pages, and leave no broken
link. Zensical drops plugins it does not implement without a word, so a configuration check
reads its own table of supported plugins and the options it discards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.docs.sitebuild import BuiltSite, check_links
from tests.procs import ROOT, tool_env

pytestmark = [pytest.mark.docs, pytest.mark.xdist_group("docs:engines")]

ENGINES = ("mkdocs", "properdocs", "zensical")
#: Longest one engine's build may take, in seconds (a cold strict build takes 20-40 s here).
BUILD_TIMEOUT_SECONDS = 300
ZENSICAL = ROOT / ".venv-zensical" / "bin"


class _Tagged(yaml.SafeLoader):
    """A YAML loader that reads `!!python/name:` tags as plain strings (nothing imported)."""


_Tagged.add_multi_constructor(
    "tag:yaml.org,2002:python/", lambda loader, suffix, node: f"!!python/{suffix}"
)


def _config() -> dict[str, object]:
    loaded = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Tagged)
    assert isinstance(loaded, dict)
    return loaded


def _names(entries: object) -> list[str]:
    """Names of a `plugins:` or `markdown_extensions:` list (strings or one-key mappings)."""
    assert isinstance(entries, list)
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


def _zensical_python() -> Path:
    python = ZENSICAL / "python"
    if not python.is_file():
        pytest.fail(f"{python} is missing; run HIVE_NEED_ENGINES=1 scripts/bootstrap")
    return python


def _build(engine: str, dest: Path) -> subprocess.CompletedProcess[str]:
    env = tool_env(DISABLE_MKDOCS_2_WARNING="true", NO_COLOR="1")
    bin_dir = Path(sys.executable).parent
    if engine == "properdocs":
        argv = [str(bin_dir / "properdocs"), "build", "--strict", "-f", "mkdocs.yml"]
        argv += ["--site-dir", str(dest)]
    else:
        # Zensical has no --site-dir and wants the site inside the project: the same file
        # plus one `site_dir` line, beside it, so every relative path still resolves.
        _zensical_python()
        config = ROOT / f".hive-engine-{uuid.uuid4().hex[:8]}.yml"
        inside = ROOT / ".hive" / "engines" / config.stem
        text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
        config.write_text(text + f"\nsite_dir: {inside.relative_to(ROOT)}\n", encoding="utf-8")
        try:
            done = subprocess.run(
                [str(ZENSICAL / "zensical"), "build", "--strict", "-f", str(config)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_SECONDS,
                check=False,
            )
        finally:
            config.unlink()
        if inside.is_dir():
            shutil.move(str(inside), str(dest))
        return done
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.fixture(scope="module")
def sites(
    tmp_path_factory: pytest.TempPathFactory, built_site: BuiltSite
) -> Iterator[dict[str, Path]]:
    """Every engine's strict build of the site; a failed build fails every test here.

    The primary engine's build is the run's shared one (`mkdocs build --strict`, made once
    for this module, test_site.py and the browser tests); the other two are built here.
    """
    built: dict[str, Path] = {"mkdocs": built_site.path}
    failures: list[str] = []
    if built_site.returncode != 0:
        failures.append(f"mkdocs build --strict failed:\n{built_site.stderr[-3000:]}")
    for engine in ENGINES[1:]:
        dest = tmp_path_factory.mktemp(f"site-{engine}") / "site"
        done = _build(engine, dest)
        if done.returncode != 0:
            failures.append(
                f"{engine} build --strict failed:\n{(done.stdout + done.stderr)[-3000:]}"
            )
        built[engine] = dest
    assert not failures, "\n\n".join(failures)
    yield built


def _pages(site: Path) -> set[str]:
    return {str(p.relative_to(site)) for p in site.rglob("*.html")}


def test_every_engine_builds_the_same_pages(sites: dict[str, Path]) -> None:
    pages = {engine: _pages(site) for engine, site in sites.items()}
    primary = pages["mkdocs"]
    assert len(primary) > 20, "the primary build produced almost nothing"
    for engine, found in pages.items():
        assert found == primary, (
            f"{engine}: missing {sorted(primary - found)}, extra {sorted(found - primary)}"
        )


@pytest.mark.parametrize("engine", ["properdocs", "zensical"])
def test_other_engines_leave_no_broken_link(sites: dict[str, Path], engine: str) -> None:
    # The primary engine's site is link-checked in test_site.py; these are the other two.
    done = check_links(sites[engine])
    assert done.returncode == 0, done.stdout[-4000:]
    assert " 0 errors found" in done.stdout


def test_configuration_uses_only_what_zensical_implements() -> None:
    # Zensical's own table of the plugins it implements and the options it drops, read from
    # the installed engine: a plugin outside it is ignored silently, and so is such an option.
    probe = (
        "import json\nfrom zensical import config\n"
        "print(json.dumps({k: list(v) for k, v in config._PLUGIN_UNSUPPORTED_OPTIONS.items()}))"
    )
    done = subprocess.run(
        [str(_zensical_python()), "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (
        "Zensical no longer exposes its plugin table (config._PLUGIN_UNSUPPORTED_OPTIONS); "
        f"find where it moved:\n{done.stderr[-2000:]}"
    )
    supported: dict[str, list[str]] = json.loads(done.stdout)
    plugins = _config()["plugins"]
    assert isinstance(plugins, list)
    for entry in plugins:
        name, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        assert name in supported, f"Zensical silently ignores the plugin {name!r}"
        dropped = set(options or {}) & set(supported[name])
        assert not dropped, f"Zensical silently ignores {name} options {sorted(dropped)}"


@pytest.mark.parametrize("engine", ["mkdocs", "zensical"])
def test_every_markdown_extension_loads_in_every_engine(engine: str) -> None:
    # Each engine hands `markdown_extensions` to its own Python-Markdown; an extension that
    # one environment lacks would change pages there. ProperDocs shares .venv with MkDocs.
    names = _names(_config()["markdown_extensions"])
    python = Path(sys.executable) if engine == "mkdocs" else _zensical_python()
    probe = (
        "import sys, markdown\n"
        "for name in sys.argv[1:]:\n"
        "    markdown.Markdown(extensions=[name])\n"
    )
    done = subprocess.run(
        [str(python), "-c", probe, *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{engine}: {done.stderr[-2000:]}"


def test_primary_and_fallback_plugins_resolve_to_installed_packages() -> None:
    # MkDocs and ProperDocs fail loudly on an unknown plugin; this says which one, up front.
    from importlib.metadata import entry_points

    known = {
        e.name
        for group in ("mkdocs.plugins", "properdocs.plugins")
        for e in entry_points(group=group)
    }
    missing = [name for name in _names(_config()["plugins"]) if name not in known]
    assert not missing, f"plugins no installed package provides: {missing}"
