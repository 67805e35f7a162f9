"""The core is sans-I/O: no module of replog.raft imports a clock, sockets, threads, the OS
or module-level randomness (ARCHITECTURE.md, "Arrows")."""

from __future__ import annotations

import ast
from pathlib import Path

import replog.raft

RAFT_DIR = Path(replog.raft.__file__).parent
FORBIDDEN = {"asyncio", "socket", "time", "os", "random", "threading", "selectors", "subprocess"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 70


# Every module of the package is core: the I/O edges (the asyncio driver, the gRPC transport,
# the on-disk log store) live in replog.cluster, under tests/unit/test_project.py's limits.
def _modules() -> list[Path]:
    return sorted(RAFT_DIR.rglob("*.py"))


def test_raft_modules_import_no_io_clock_or_global_randomness() -> None:
    offenders = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert not offenders
    assert len(_modules()) >= 10


def test_raft_modules_and_functions_stay_small() -> None:
    too_big = []
    for path in _modules():
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_big.append(f"{path.name} has {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{path.name}:{node.name} has {length} lines")
    assert not too_big


def test_every_public_function_of_the_core_has_a_docstring() -> None:
    missing = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.ClassDef) or node.name[0] == "_":
                continue
            if ast.get_docstring(node) is None:
                missing.append(f"{path.name}:{node.name}")
    assert not missing
