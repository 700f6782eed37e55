"""The runtime is MLX-only: nothing in the package imports torch, directly or indirectly."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import assistant

PACKAGE = Path(assistant.__file__).parent


def test_no_module_mentions_torch_in_an_import() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] == "torch"]
    assert offenders == []


def test_importing_everything_loads_no_torch() -> None:
    modules = [m.name for m in pkgutil.walk_packages([str(PACKAGE)], prefix="assistant.")]
    modules = [m for m in modules if m != "assistant.__main__"]
    if sys.platform != "darwin":  # the rumps layer exists only where rumps does (macOS)
        modules.remove("assistant.menubar.rumps_toolkit")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print(len(sys.modules)); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
