"""server/ has no import cycle: every module imports on its own, and none imports another
server module inside a function to dodge one."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

SERVER = Path(__file__).parents[2] / "server"
MODULES = sorted(f"server.{p.stem}" for p in SERVER.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", MODULES)
def test_each_server_module_imports_first_and_alone(module: str) -> None:
    # Prepare: forget every server module, so `module` is the first one imported
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name.startswith("server")}
    try:
        # Execute / Assert: a cycle would fail here on a partly initialised module
        importlib.import_module(module)
    finally:
        for name in [n for n in sys.modules if n.startswith("server")]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.mark.parametrize("module", MODULES)
def test_server_modules_import_each_other_at_the_top_only(module: str) -> None:
    # Prepare
    tree = ast.parse((SERVER / f"{module.removeprefix('server.')}.py").read_text())
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    # Execute
    local = [
        node.module
        for function in functions
        for node in ast.walk(function)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("server")
    ]
    # Assert
    assert local == []
