"""The layers of docs/architecture.md hold: no module imports a layer above its own, the loss layer
imports neither nnU-Net's trainer code nor matplotlib, and the shipped text cites nothing a user of the
package does not have."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "nnunet_polydice"
LAYERS = ("loss", "integration", "experiments", "cli")  # bottom to top


def _imports(path: Path, root: Path = REPO) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved), top level or not."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "nnunet_polydice" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def _package_modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if _layer_of(".".join(p.relative_to(REPO).parts)))


def test_the_tree_has_the_four_layers():
    assert all((PACKAGE / layer / "__init__.py").is_file() for layer in LAYERS)
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"modules outside the layers: {loose}"


@pytest.mark.parametrize("path", _package_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path):
    own = LAYERS.index(_layer_of(".".join(path.relative_to(REPO).parts)))
    above = {m for m in _imports(path) if _layer_of(m) and LAYERS.index(_layer_of(m)) > own}
    assert above == set(), f"{path.relative_to(REPO)} imports {sorted(above)}"


def test_the_loss_layer_needs_no_trainer_code_and_no_plotting():
    for path in (PACKAGE / "loss").glob("*.py"):
        heavy = {m for m in _imports(path) if m.split(".")[0] == "matplotlib" or m.startswith(
            "nnunetv2.training.nnUNetTrainer") or m.startswith("nnunetv2.run")}
        assert heavy == set(), f"{path.name} imports {sorted(heavy)}"


def test_the_import_rule_would_catch_an_upward_import(tmp_path):
    """The check itself can fail: an experiments import in a loss-layer file is seen."""
    bad = tmp_path / "nnunet_polydice" / "loss" / "probe.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from nnunet_polydice.experiments import results\n\ndef f():\n    from ..cli import main\n")
    found = {m for m in _imports(bad, tmp_path) if _layer_of(m)}
    assert {"nnunet_polydice.experiments", "nnunet_polydice.cli"} <= found


def test_shipped_text_cites_no_internal_specification():
    shipped = [*PACKAGE.rglob("*.py"), *(REPO / "trainers").glob("*.py"), REPO / "README.md",
               *(REPO / "docs").glob("*.md"), *(REPO / "startup").glob("*.py")]
    citing = [str(p.relative_to(REPO)) for p in shipped if "SPEC.md" in p.read_text()]
    assert citing == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_circle_among_the_package_modules():
    """Every import a module makes (at the top or inside a function), between modules of the package; a package's
    ``__init__`` re-exporting its modules is left out of the graph (a module importing a sibling imports the
    package first, but the package's own imports are not the module's)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    state, circles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == [], circles
