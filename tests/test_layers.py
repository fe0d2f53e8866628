"""The package reads top-down: no module imports one of a higher layer, and no two modules import each other.

Layers, lowest first: the shared core (geometry, answer format, manifest schema, prompts, rewards, the HTTP
client, ...); model family adapters; data (synthesis, conversion, annotations, trajectories); building models
from configs; evaluation; training; the embedded base's pretraining; the demo and the command line.
Every import counts, also one inside a function or under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mirg"

LAYERS = [
    ("core", ("mirg", "mirg.errors", "mirg.textfiles", "mirg.folders", "mirg.options", "mirg.geometry", "mirg.answer",
              "mirg.schema", "mirg.prompts", "mirg.formats", "mirg.rewards", "mirg.chat_client", "mirg.pipeline")),
    ("models", ("mirg.models",)),
    ("data", ("mirg.data",)),
    ("architectures", ("mirg.architectures",)),
    ("eval", ("mirg.eval",)),
    ("train", ("mirg.train",)),
    ("tinybase", ("mirg.tinybase",)),
    ("top", ("mirg.demo", "mirg.demo_report", "mirg.commands", "mirg.cli", "mirg.__main__")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer a module belongs to: the most specific prefix listed."""
    best, depth = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = index, prefix.count(".")
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS"
    return best


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The mirg modules ``path`` imports (``from mirg.x import y`` counts mirg.x.y where that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "mirg":
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in known)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "mirg")
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: {m for m in imported_modules(path, known) if m in known and m != name} for name, path in files.items()}


def test_no_module_imports_a_higher_layer():
    graph = import_graph()
    assert len(graph) > 60
    upward = sorted(f"{module} ({LAYERS[layer_of(module)][0]}) imports {dep} ({LAYERS[layer_of(dep)][0]})"
                    for module, deps in graph.items() for dep in deps
                    if dep != "mirg" and layer_of(dep) > layer_of(module))
    assert not upward, "\n".join(upward)


def test_no_two_modules_import_each_other():
    graph = import_graph()
    cycles = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a in graph.get(b, set())})
    assert not cycles


def test_models_holds_the_family_adapters_only():
    names = {path.stem for path in (PACKAGE / "models").glob("*.py")}
    assert names == {"__init__", "base", "registry", "qwen", "llava", "processors"}, names
