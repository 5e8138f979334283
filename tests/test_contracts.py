"""The architecture's contracts, checked on every run of the suite.

* ``lint-imports`` keeps the import-linter contracts of ``pyproject.toml``
  (``[tool.importlinter]``): the layers (entry → user interfaces → tools → assembly → till →
  engine → stages → catalogue → storage), no Qt outside ``kiosk.ui`` and the entry, no
  ``kiosk.tools`` in the kiosk itself, no cycles between sibling packages;
* no import cycle between any two modules of ``kiosk`` (a package and its own modules
  included, which import-linter's sibling check does not see);
* the contracts name every top-level module (a new one cannot slip past them);
* only the program entry reaches the window's commands; only the composition root opens an
  engine.

Imports inside functions count: a lazy import is still a dependency.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

grimp = pytest.importorskip("grimp")
pytest.importorskip("importlinter")


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("kiosk", cache_dir=None)


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _top_level() -> set[str]:
    """kiosk's own top-level modules and packages (kiosk.X)."""
    names = set()
    for p in (ROOT / "kiosk").iterdir():
        if p.suffix == ".py" and p.name != "__init__.py":
            names.add(f"kiosk.{p.stem}")
        elif p.is_dir() and (p / "__init__.py").exists():
            names.add(f"kiosk.{p.name}")
    return names


def test_import_contracts_are_kept():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(no_cache=True, no_logo=True))"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def _cycle(graph, modules: set[str]) -> list[str] | None:
    """One import cycle among ``modules`` (the path, first module repeated last), or None."""
    colour: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        colour[m] = 1
        path.append(m)
        for n in sorted(graph.find_modules_directly_imported_by(m) & modules):
            if colour.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in colour:
                found = visit(n)
                if found:
                    return found
        path.pop()
        colour[m] = 2
        return None

    for m in sorted(modules):
        if m not in colour:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycles_between_modules(graph):
    modules = {m for m in graph.modules if m == "kiosk" or m.startswith("kiosk.")}
    cycle = _cycle(graph, modules)
    if cycle:
        lines = []
        for a, b in zip(cycle, cycle[1:]):
            where = graph.get_import_details(importer=a, imported=b)
            lines.append(f"{a} -> {b} (line {', '.join(str(d['line_number']) for d in where)})")
        pytest.fail("import cycle:\n  " + "\n  ".join(lines))


def test_cycle_finder_finds_a_cycle():
    g = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c"):
        g.add_module(m)
    g.add_import(importer="p.a", imported="p.b")
    g.add_import(importer="p.b", imported="p.c")
    assert _cycle(g, {"p", "p.a", "p.b", "p.c"}) is None
    g.add_import(importer="p.c", imported="p")
    g.add_import(importer="p", imported="p.a")
    assert _cycle(g, {"p", "p.a", "p.b", "p.c"}) == ["p", "p.a", "p.b", "p.c", "p"]


def test_the_contracts_name_every_module():
    contracts = _contracts()
    top = _top_level()
    assert set(contracts["no-qt"]["source_modules"]) == top - {"kiosk.ui", "kiosk.__main__"}
    assert set(contracts["no-tools"]["source_modules"]) == top - {
        "kiosk.tools", "kiosk.cli", "kiosk.__main__"}
    # the layers contract is exhaustive: every kiosk.X sits in a layer (checked by lint-imports)
    assert contracts["layers"]["exhaustive"] is True


def test_only_the_entry_reaches_the_window(graph):
    """Nothing outside kiosk.ui imports it, except the program entry; the window's commands
    (the kiosk, the self-test's Qt checks, the GUI bench and soak) are reached only from there."""
    outside = {m for m in graph.modules
               if m.startswith("kiosk.") and m != "kiosk.ui" and not m.startswith("kiosk.ui.")}
    importers = {m for m in outside
                 if any(n == "kiosk.ui" or n.startswith("kiosk.ui.")
                        for n in graph.find_modules_directly_imported_by(m))}
    assert importers == {"kiosk.__main__"}
    assert graph.find_modules_that_directly_import("kiosk.ui.commands") == {"kiosk.__main__"}
    for tool in ("kiosk.ui.selftest", "kiosk.ui.soak", "kiosk.ui.bench_gui"):
        assert graph.find_modules_that_directly_import(tool) == {"kiosk.ui.commands"}, tool


def test_only_the_composition_root_opens_an_engine():
    """``Engine.open`` (and ``Engine(...)``) is called by kiosk.assemble, and inside the engine
    and the demo catalogue's builder; every other part gets its engine from kiosk.assemble.
    The benchmark and the tray evaluation measure the engine itself (on synthetic galleries,
    with the options they compare)."""
    allowed = {"kiosk/assemble.py", "kiosk/engine.py", "kiosk/demo/catalog.py",
               "kiosk/tools/bench.py", "kiosk/tools/tray_eval.py"}
    found = []
    for path in [*(ROOT / "kiosk").rglob("*.py"), *(ROOT / "tools").rglob("*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bEngine(\.open)?\(", line.split("#")[0]):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, "engines opened outside kiosk.assemble:\n" + "\n".join(found)
