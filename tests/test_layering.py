"""Dependencies between the assistant's packages run one way (see the README's map).

Every import in every module counts, lazy ones inside functions and type-only ones included:
a layer that may not import another may not reach it at all.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "assistant"

# The base: modules every layer may use; they import nothing of the assistant but each other.
BASE = {
    "errors",
    "paths",
    "app_settings",
    "console",
    "frames",
    "files",
    "logs",
    "interrupts",
    "strict_json",
    "version",
    "__init__",
}

# package -> the packages it may import (besides itself and the base).
ALLOWED: dict[str, set[str]] = {
    "checkpoint": set(),  # the file formats: no runtime, no MLX
    "voice": {"checkpoint"},  # the MLX runtime
    "stt": {"checkpoint", "voice"},  # speech to text (its memory check is voice's)
    "codec": {"checkpoint"},  # the Mimi codec: rustymimi in worker processes, no MLX
    "audio": set(),  # devices, streams, echo cancellation, sound files
    "telemetry": {"checkpoint"},  # records, metrics, summary, trace (the model card reads a report)
    "conversation": {"checkpoint", "voice", "codec", "audio", "telemetry"},
    "history": {"checkpoint", "stt", "audio", "telemetry", "conversation"},  # past conversations
    "dashboard": {"telemetry", "conversation"},  # the terminal UI
    "bench": {"checkpoint", "voice", "codec", "audio", "telemetry", "stt"},
    "service": {"checkpoint", "voice", "audio", "telemetry", "conversation", "stt", "history"},
    "menubar": {"checkpoint", "service"},
    "cli": {
        "checkpoint",
        "voice",
        "stt",
        "codec",
        "audio",
        "telemetry",
        "conversation",
        "history",
        "dashboard",
        "bench",
        "service",
        "menubar",
    },
    "__main__": {"cli"},  # `python -m assistant`
}


def _layer(module: str) -> str:
    """assistant.x.y -> x (a base module is its own layer)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every assistant module `path` imports: (line, absolute module name)."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    here = parts[:-1]  # the package holding this module
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("assistant")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("assistant"):
                # `from .. import x` may name a submodule: count the most specific form.
                found += [
                    (node.lineno, f"{name}.{a.name}" if not node.module else name)
                    for a in node.names
                ]
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_package_has_a_rule() -> None:
    packages = {p.relative_to(PACKAGE).parts[0] for p in _modules()}
    packages = {p.removesuffix(".py") for p in packages}
    assert packages - BASE <= set(ALLOWED), packages - BASE - set(ALLOWED)


def test_dependencies_run_one_way() -> None:
    wrong = []
    for path in _modules():
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        here = _layer(".".join(rel.parts))
        here = here.removesuffix(".py")
        for line, target in _imports(path):
            there = _layer(target)
            if there in BASE or there == here:
                continue
            allowed = set() if here in BASE else ALLOWED[here]
            if there not in allowed:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_module_imports_itself_through_others() -> None:
    """No import cycle between modules, type-only and lazy imports included: a cycle means
    neither module can be read (or tested) without the other."""
    graph: dict[str, set[str]] = {}
    for path in _modules():
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        graph[name] = set()
        graph[name] |= {target for _, target in _imports(path)}
    known = set(graph)
    edges = {m: {t for t in ts if t in known and t != m} for m, ts in graph.items()}
    cycles, state = [], dict.fromkeys(edges, 0)  # 0 unseen, 1 on the path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(edges[module]):
            if state[nxt] == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif state[nxt] == 0:
                visit(nxt, [*path, nxt])
        state[module] = 2

    for module in sorted(edges):
        if state[module] == 0:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_base_modules_import_only_the_base() -> None:
    for name in BASE - {"__init__"}:
        for line, target in _imports(PACKAGE / f"{name}.py"):
            assert _layer(target) in BASE, f"{name}.py:{line} imports {target}"


@pytest.mark.parametrize(
    "module",
    [
        "assistant.checkpoint.catalogue",
        "assistant.checkpoint.validate",
        "assistant.checkpoint.resolve",
        "assistant.checkpoint.synthetic.checkpoint",
        "assistant.checkpoint.quantize",
        "assistant.checkpoint.stt_hub",
        "assistant.checkpoint.stt_validate",
        "assistant.checkpoint.synthetic.stt",
        "assistant.menubar.menu",
        "assistant.service.client",
        "assistant.codec.streaming",
    ],
)
def test_checkpoint_format_and_menu_bar_import_no_mlx(module: str) -> None:
    """The menu bar and checkpoint tools start fast: the catalogue must not pull in MLX."""
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'moshi_mlx'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"
