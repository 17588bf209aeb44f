"""The import rules of ARCHITECTURE.md, checked over every Python file in the tree.

- What ships (the layer, the handlers, the agent) never imports tooling (emulator, scripts, tests).
- The agent imports from the layer only its stdlib-only modules, and nothing that needs boto3,
  pyjwt or cryptography: its runtime dependencies are aiohttp and rich (pyproject.toml).
- Only the emulator's Lambda worker edits sys.path (it reproduces what Lambda puts there).
- The emulator takes from scripts/ only the process harness and the shared helpers
  (scripts.tfenv, scripts.tokens): the fake of AWS never reaches up into the tools that use it.
- No import cycles anywhere, lazy and type-only (``if TYPE_CHECKING:``) imports included.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {"layer": ROOT / "shared" / "httptunnel", "handlers": ROOT / "lambdas", "agent": ROOT / "cli" / "ttf"}
TOOLING = ("emulator", "scripts", "tests")
AGENT_LAYER_MODULES = {"httptunnel", "httptunnel.protocol", "httptunnel.limits", "httptunnel.policy",
                       "httptunnel.webhooks", "httptunnel.ttlmap", "httptunnel.chunks"}
# Layer modules that must import only the standard library even when the agent does not load them.
STDLIB_ONLY_LAYER_MODULES = {"httptunnel.chunks", "httptunnel.request_ids"}
AGENT_RUNTIME = {"aiohttp", "rich", "httptunnel", "ttf"}
AIOHTTP_OWN = {"yarl", "multidict"}  # aiohttp's own pinned dependencies, used through its API
# The pytest plugin is loaded by pytest (entry point pytest11) and so may import it; nothing else may.
PYTEST_PLUGIN = Path("cli/ttf/pytest_plugin.py")
SYS_PATH_EDITOR = ROOT / "emulator" / "lambda_runtime" / "worker.py"
SKIP_DIRS = {"build", "node_modules", "cache", "__pycache__"}
EMULATOR_MAY_IMPORT_FROM_SCRIPTS = ("scripts.harness", "scripts.tfenv", "scripts.tokens")
PACKAGES = {"httptunnel": ROOT / "shared" / "httptunnel", "ttf": ROOT / "cli" / "ttf", "emulator": ROOT / "emulator",
            "scripts": ROOT / "scripts", "tests": ROOT / "tests"}


def python_files(base: Path) -> list[Path]:
    def ours(path: Path) -> bool:  # not virtualenvs, caches, build output or anything hidden
        parts = path.relative_to(ROOT).parts[:-1]
        return not SKIP_DIRS.intersection(parts) and not any(part.startswith(".") for part in parts)

    return sorted(p for p in base.rglob("*.py") if ours(p))


def imports(path: Path) -> list[tuple[int, str]]:
    """Every imported module name in the file, wherever the import statement is (lazy ones too)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, node.module)]
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names or name == "__future__"


@pytest.mark.parametrize("part", sorted(SHIPPED))
def test_shipped_code_never_imports_tooling(part: str) -> None:
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}" for p in python_files(SHIPPED[part])
           for line, name in imports(p) if name.split(".")[0] in TOOLING]
    assert not bad, "shipped code imports tooling:\n" + "\n".join(bad)


def test_the_agent_needs_only_aiohttp_rich_and_stdlib_only_layer_modules() -> None:
    bad = []
    for path in python_files(SHIPPED["agent"]):
        for line, name in imports(path):
            top = name.split(".")[0]
            if stdlib(name):
                continue
            if top == "httptunnel":
                module = name if name in AGENT_LAYER_MODULES else name.rsplit(".", 1)[0]
                if module not in AGENT_LAYER_MODULES:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports layer module {name}")
            elif top == "pytest" and path.relative_to(ROOT) == PYTEST_PLUGIN:
                continue
            elif top not in AGENT_RUNTIME | AIOHTTP_OWN:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "the agent imports beyond its runtime dependencies:\n" + "\n".join(bad)


def layer_siblings(path: Path) -> set[str]:
    """``httptunnel.<x>`` for each relative import (``from .x import``, ``from . import x``) in a layer module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {f"httptunnel.{node.module}"} if node.module else {f"httptunnel.{a.name}" for a in node.names}
    return found


def test_the_layer_modules_the_agent_uses_are_stdlib_only() -> None:
    for module in sorted(AGENT_LAYER_MODULES - {"httptunnel"}):
        path = SHIPPED["layer"] / (module.split(".")[1] + ".py")
        bad = [f"{line}: {name}" for line, name in imports(path) if not stdlib(name)]
        assert not bad, f"{module} must stay stdlib-only (the agent ships without boto3/pyjwt): {bad}"
        beyond = layer_siblings(path) - AGENT_LAYER_MODULES
        assert not beyond, f"{module} imports {sorted(beyond)}, which the agent may not load (AGENT_LAYER_MODULES)"


def test_protocol_state_machines_are_stdlib_only() -> None:
    for module in sorted(STDLIB_ONLY_LAYER_MODULES):
        path = SHIPPED["layer"] / (module.split(".")[1] + ".py")
        bad = [f"{line}: {name}" for line, name in imports(path) if not stdlib(name)]
        assert not bad and not layer_siblings(path), f"{module} must import only the standard library: {bad}"


def test_runtime_dependencies_are_the_agents() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {dep.split("==")[0].split(">")[0].split("[")[0].strip().lower() for dep in project["dependencies"]}
    assert names == AGENT_RUNTIME - {"httptunnel", "ttf"}
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert sorted({p.split(".")[0] for p in packages}) == ["httptunnel", "ttf"], "the wheel ships no tooling"


def test_only_the_lambda_worker_edits_sys_path() -> None:
    bad = []
    for path in python_files(ROOT):
        if path == SYS_PATH_EDITOR:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            target = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                target = node.func.value  # sys.path.insert(...) / .append(...)
            elif isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                target = next((t.value if isinstance(t, ast.Subscript) else t for t in targets), None)
            if (isinstance(target, ast.Attribute) and target.attr == "path"
                    and isinstance(target.value, ast.Name) and target.value.id == "sys"):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, "sys.path edited outside the Lambda worker: " + ", ".join(bad)


def test_the_emulator_imports_only_the_harness_and_shared_helpers_from_scripts() -> None:
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}" for p in python_files(ROOT / "emulator")
           for line, name in imports(p)
           if name.split(".")[0] == "scripts" and name != "scripts"
           and not any(name == ok or name.startswith(ok + ".") for ok in EMULATOR_MAY_IMPORT_FROM_SCRIPTS)]
    assert not bad, ("the emulator reaches into tooling (move what it shares next to scripts.tfenv, or the tool "
                     "under scripts/):\n" + "\n".join(bad))


def module_graph() -> dict[str, set[str]]:
    """Our module -> the modules of ours it imports (any import statement: top level, lazy, under
    TYPE_CHECKING; relative ones resolved). A module's own parent packages are not edges."""
    modules: dict[str, Path] = {}
    for name, base in PACKAGES.items():
        for path in python_files(base):
            parts = path.relative_to(base).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            modules[".".join((name, *parts))] = path

    def ours(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for name in names:
                target = ours(name)
                if target and target != module and not module.startswith(target + "."):
                    found.add(target)
        graph[module] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_type_only_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    graph = module_graph()
    assert "scripts.smoke.context" in graph["scripts.smoke.swap"], "type-only and relative imports are edges"
    assert "httptunnel.aws" in graph["httptunnel.bodies"]


def test_no_import_cycles() -> None:
    found = cycles(module_graph())
    assert not found, "import cycles (type-only imports count: move the shared piece to a module of its own):\n" + \
        "\n".join(" <-> ".join(c) for c in found)


LAMBDA_STORIES = ("connect", "disconnect", "response", "forward", "cleanup", "stream_notifier")
FORWARD_STAGES = ("replies", "gate", "tunnels", "to_agent", "waiting", "to_caller")


def _relative_imports(path: Path) -> set[str]:
    """Layer modules a layer file imports relatively (``from . import a`` and ``from .a import b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {alias.name for alias in node.names}
    return found


@pytest.mark.parametrize("stage", FORWARD_STAGES)
def test_forward_stages_never_import_a_lambdas_story(stage: str) -> None:
    """The stages are shared by every edge (buffered today, streaming next): importing a Lambda's
    story module (forward itself included) would tie a stage to one of them."""
    path = SHIPPED["layer"] / f"{stage}.py"
    assert path.exists(), f"forward's stage module {stage}.py is gone: update FORWARD_STAGES"
    assert not _relative_imports(path) & set(LAMBDA_STORIES), f"{stage}.py imports a Lambda's story module"


def test_the_runtime_api_client_imports_only_the_standard_library() -> None:
    """It runs before anything else in a streaming function (the wrapper's first import): stdlib only."""
    path = SHIPPED["layer"] / "runtime_api.py"
    bad = [f"{line}: {name}" for line, name in imports(path) if not stdlib(name)]
    assert not bad and not layer_siblings(path), f"runtime_api must stay stdlib-only: {bad} {layer_siblings(path)}"
