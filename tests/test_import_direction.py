"""Imports point one way: a module never imports a package that sits above its own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "selfloop"
# Lowest first. ``core`` (the error base, the metric catalogue, eval mode, the offline switch) is at the
# bottom; analysis reads run directories and may import the run layer, but no training code imports it;
# the entry points (the ``selfloop`` command, the known-answer scenarios) run training and analysis both.
LAYERS = [
    {"core"},
    {"data"},
    {"run"},
    {"console"},
    {"classifiers", "generators"},
    {"filtering"},
    {"metrics"},
    {"callbacks"},
    {"training"},
    {"cli"},
    {"analysis"},
    {"known_answers", "__main__"},
]
ANALYSIS = "analysis"
ENTRY_POINTS = LAYERS[-1]


def _layer(unit: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if unit in names)


def _unit(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):  # also the imports inside functions: a lazy import is still an edge
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("selfloop."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("selfloop.")}
    return found


def test_no_module_imports_upward():
    backward = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).with_suffix("")
        if relative.name == "__init__" and len(relative.parts) == 1:
            continue
        unit = relative.parts[0]
        for module in _imports(path):
            target = _unit(module)
            if _layer(target) > _layer(unit):
                backward.append(f"{relative} -> {module}")
            if target == ANALYSIS and unit != ANALYSIS and unit not in ENTRY_POINTS:
                backward.append(f"{relative} -> {module} (training code must not import analysis)")
    assert backward == []


def test_the_check_sees_a_backward_edge(tmp_path):
    # The walker itself: a lazy import of callbacks from data is found.
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from selfloop.callbacks.evaluation import evaluation_callback\n")
    assert _imports(module) == {"selfloop.callbacks.evaluation"}
    assert _layer(_unit("selfloop.callbacks.evaluation")) > _layer("data")


def test_every_top_level_module_and_package_has_a_layer():
    # The top level is the layout: a new module goes into a layer's package (or becomes one), never loose.
    units = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    units |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert units == set().union(*LAYERS)
