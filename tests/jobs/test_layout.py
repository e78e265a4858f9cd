"""The engine's layout: every module imports on its own, none imports a domain app, and the
modules of `jobs/` import each other without a cycle."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "jobs"
DOMAIN_APPS = ("ledger", "leaderboard")


def engine_modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(ENGINE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_names(path: Path, *, module_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_module_of_the_engine_imports_a_domain_app():
    offenders = {
        module: sorted(
            name
            for name in imported_names(path, module_level_only=False)
            if name.split(".")[0] in DOMAIN_APPS
        )
        for module, path in engine_modules().items()
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_the_engine_modules_import_each_other_without_a_cycle():
    modules = engine_modules()
    graph = {
        module: {
            name
            for name in imported_names(path, module_level_only=True)
            if name in modules and name != module
        }
        for module, path in modules.items()
    }
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            cycle = visiting[visiting.index(module) :] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        visiting.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


@pytest.mark.parametrize("module", sorted(engine_modules()))
def test_every_engine_module_imports_on_its_own_in_a_fresh_interpreter(module):
    program = (
        f"import importlib, django; django.setup(); importlib.import_module({module!r})"
        if module != "jobs.conf"
        # The settings module itself imports jobs.conf: it must need nothing set up.
        else f"import importlib; importlib.import_module({module!r})"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings"}
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
