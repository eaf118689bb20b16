"""The layering rule of docs/architecture.md: package imports point down only; scripts are thin and independent."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "medsecure_transforms"

# layer of each top-level part of the package; a module may import its own part and any lower layer
LAYERS = {
    "frequency": 0,
    "artefacts": 0,
    "data": 0,
    "attacks": 1,
    "defenses": 1,
    "codecs": 1,
    "preprocessing": 1,
    "networks": 1,
    "transforms": 2,
    "bundle": 3,
    "evaluation": 3,
    "cli": 4,
    "deploy": 4,
    "overlays": 4,
}
SCRIPT_MAX_LINES = 85


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "medsecure_transforms" and len(parts) > 1 else None


def _imports(path: Path) -> list[str]:
    """Absolute names of the package modules imported by ``path`` (relative imports resolved)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return [n for n in names if n.startswith("medsecure_transforms.")]


def _package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", _package_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_package_imports_point_down(path):
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    assert own in LAYERS, f"{own} has no layer in tests/test_layering.py (and docs/architecture.md)"
    upward = sorted({name for name in _imports(path) if (part := _part(name)) in LAYERS and LAYERS[part] > LAYERS[own]})
    assert not upward, f"{path.relative_to(REPO)} (layer {LAYERS[own]}) imports upper layers: {upward}"


@pytest.mark.parametrize("path", sorted((REPO / "scripts").glob("*.py")), ids=lambda p: p.name)
def test_scripts_are_thin_command_lines(path):
    text = path.read_text()
    assert len(text.splitlines()) <= SCRIPT_MAX_LINES, f"{path.name}: logic belongs in the package"
    assert "sys.path" not in text, f"{path.name} edits sys.path"
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert (
                node.module.split(".")[0] in {"medsecure_transforms", "__future__"}
                or not (REPO / "scripts" / f"{node.module}.py").exists()
            ), f"{path.name} imports another script ({node.module})"
            if node.module.startswith("medsecure_transforms.cli."):
                assert node.module == "medsecure_transforms.cli.arguments", f"{path.name} imports a CLI command"
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"{path.name} imports private names {private} from {node.module}"
