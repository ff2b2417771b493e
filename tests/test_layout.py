"""The package is laid out by pipeline stage: its import graph (function-local
imports included) has no cycle and no import from a later stage back into an
earlier one, and it is self-contained (nothing names the folder beside the
checkout)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "slt_deploy"

STAGES = ["core", "neuron", "readout", "data", "models", "training", "ir", "deploy", "lava", "simulation",
          "energy", "runtime", "report", "cli"]
"""Pipeline stages in order; a module may import its own stage or an earlier one."""


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every slt_deploy module that ``name`` imports, at any depth of its code."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                if f"{module}.{alias.name}" in known:
                    targets.add(f"{module}.{alias.name}")
                elif module in known:
                    targets.add(module)
    return targets - {name}


def unresolved_imports() -> list[str]:
    """Imports of slt_deploy modules that name no module or symbol of the package
    (a relative import beyond the top level, or a moved module)."""
    known = modules()
    problems = []
    for name, path in known.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                if node.level > len(package):
                    problems.append(f"{name}:{node.lineno} goes beyond the top-level package")
                    continue
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                if module not in known:
                    problems.append(f"{name}:{node.lineno} imports {module}, which does not exist")
    return problems


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def stage(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 else None  # the top-level package is the public face


def test_every_module_belongs_to_a_stage():
    unplaced = [name for name in modules() if name != "slt_deploy" and name.split(".")[1] not in STAGES]
    assert not unplaced, f"modules outside the pipeline stages: {unplaced}"


def test_every_relative_import_names_a_module_of_the_package():
    problems = unresolved_imports()
    assert not problems, "; ".join(problems)


def test_the_import_graph_has_no_cycle():
    edges = graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)


def test_no_stage_imports_a_later_stage():
    backwards = []
    for source, targets in graph().items():
        for target in targets:
            if stage(source) is not None and stage(target) is not None and stage(target) > stage(source):
                backwards.append(f"{source} -> {target}")
            if stage(source) is not None and target == "slt_deploy" and source != "slt_deploy":
                backwards.append(f"{source} -> slt_deploy (the public face imports everything)")
    assert not backwards, "imports from a later stage: " + ", ".join(sorted(backwards))


def test_only_the_cli_imports_nothing_from_the_cli():
    importers = [source for source, targets in graph().items()
                 if any(t.startswith("slt_deploy.cli") for t in targets) and not source.startswith("slt_deploy.cli")]
    assert not importers, f"the CLI is imported by {importers}"


def test_nothing_reads_the_folder_beside_the_checkout():
    beside = 'shared'  # the folder next to a developer's checkout, absent from a plain clone
    pattern = re.compile(rf"\.\./{beside}|parent\s*/\s*[\"']{beside}[\"']")
    offenders = []
    for path in list(PACKAGE.rglob("*.py")) + list((ROOT / "tests").rglob("*.py")) + \
            list((ROOT / "scripts").glob("*")) + list((ROOT / "bench").glob("*.py")) + [ROOT / "README.md"]:
        if path.is_file() and path != Path(__file__) and pattern.search(path.read_text(errors="replace")):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"files that read the folder beside the checkout: {offenders}"
