"""The package's map holds: packages import only packages on lower floors (so no cycles),
the gateway sees only the public call model and the error kinds of the rest, and no
module grows past what one reading holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import alora_serve

PACKAGE = Path(alora_serve.__file__).parent
# Bottom to top; a package may import its own floor's modules only from itself.
FLOORS: list[set[str]] = [
    {"errors", "paths", "fsutil", "protos", "client", "observability", "lora_ops"},
    {"model"},
    {"adapters"},
    {"kv"},
    {"engine"},
    {"intrinsics"},
    {"transfer", "examples"},
    {"prefill"},
    {"decode", "gateway"},
    {"topology"},
    {"console", "deploy", "training"},
    {"loadtest"},
    {"cli"},
]
# What the gateway may use of the packages below it: the call model, values and errors,
# and what every package may use to report on itself.
GATEWAY_MAY_IMPORT = {"errors", "engine.types", "intrinsics.call", "observability"}
MAX_MODULE_LINES = 320


def _floor(package: str) -> int:
    return next(i for i, names in enumerate(FLOORS) if package in names)


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _package_of(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports (anywhere in it), without the
    ``alora_serve.`` prefix."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n.removeprefix("alora_serve.") for n in names if n.startswith("alora_serve."))
    return found


def test_every_package_has_a_floor():
    packages = {_package_of(p) for p in _modules() if p.parent != PACKAGE or p.stem != "__init__"}
    assert packages <= set().union(*FLOORS)


@pytest.mark.parametrize("module", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(module: Path):
    package = _package_of(module)
    if package == "__init__":
        return
    upward = [
        imported
        for imported in _imports(module)
        if (target := imported.split(".")[0]) != package and _floor(target) >= _floor(package)
    ]
    assert not upward, f"{module.name} imports from its floor or above: {upward}"


def test_the_gateway_sees_only_the_call_model_error_kinds_and_reporting():
    for module in (PACKAGE / "gateway").glob("*.py"):
        foreign = {i for i in _imports(module) if not i.startswith("gateway")}
        allowed = {i for i in foreign if any(i.startswith(a) for a in GATEWAY_MAY_IMPORT)}
        assert foreign == allowed, f"gateway/{module.name} imports internals: {foreign - allowed}"


@pytest.mark.parametrize("module", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_readable(module: Path):
    lines = len(module.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module.name} has {lines} lines; split it by job"
