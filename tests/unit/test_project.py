"""Project-wide rules checked as tests: fresh generated code, layering, size limits, public face."""

from __future__ import annotations

import ast
import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

import replog

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "replog"
BIN = Path(sys.executable).parent

MAX_FUNCTION_LINES = 70
MAX_MODULE_LINES = 520


def _modules(package: Path) -> list[Path]:
    return sorted(p for p in package.rglob("*.py") if "v1" not in p.relative_to(SRC).parts[:1])


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_generated_protobuf_code_is_fresh(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iproto",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--mypy_out={tmp_path}",
            f"--mypy_grpc_out={tmp_path}",
            *protos,
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    fresh = tmp_path / "replog" / "v1"
    generated = sorted(p.name for p in fresh.iterdir())
    assert generated, "protoc generated nothing"
    stale = [name for name in generated if not filecmp.cmp(fresh / name, SRC / "v1" / name, False)]
    assert not stale, f"run `make proto`: {stale} differ from the .proto files"
    committed = {p.name for p in (SRC / "v1").glob("*_pb2*.py*")}
    assert committed == set(generated), "src/replog/v1 has files no .proto generates"


def test_the_import_arrows_of_the_architecture_hold() -> None:
    """The import-linter contracts of pyproject.toml ([tool.importlinter]), as `make lint`."""
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--no-logo", "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", _modules(SRC / "storage"), ids=lambda p: p.name)
def test_storage_imports_nothing_above_it(path: Path) -> None:
    forbidden = (
        "replog.server",
        "replog.cluster",
        "replog.api",
        "replog.broker",
        "replog.raft",
        "replog.client",
        "replog.cli",
        "replog.security",
    )
    bad = [name for name in _imports(path) if name.startswith(forbidden) or name == "grpc"]
    assert not bad, f"{path.name} imports {bad}; storage sits below everything"


def test_raft_core_does_no_io() -> None:
    raft = SRC / "raft"
    io_modules = {"asyncio", "socket", "time", "os", "threading", "grpc", "random", "selectors"}
    for path in _modules(raft):  # its I/O edges (driver, transport, log store) are replog.cluster
        found = {name.split(".")[0] for name in _imports(path)} & io_modules
        if found == {"random"} and "Random" in path.read_text():
            found = set()  # an injected random.Random instance is allowed as a type
        assert not found, f"{path.relative_to(SRC)} imports {found}: the raft core is pure"


def test_client_imports_only_the_wire_contract_and_errors() -> None:
    client = SRC / "client"
    # and the verifiable log's pure checks (verify=True reads: notes, checkpoints, proofs)
    tlog = tuple(f"replog.tlog.{name}" for name in ("checkpoint", "hashing", "note", "proof"))
    allowed = ("replog.v1", "replog.errors", "replog.security.tls", "replog.client", *tlog)
    for path in _modules(client):
        bad = [n for n in _imports(path) if n.startswith("replog") and not n.startswith(allowed)]
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


@pytest.mark.parametrize("path", _modules(SRC), ids=lambda p: str(p.relative_to(SRC)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    text = path.read_text()
    lines = text.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: split this module into rooms"
    assert "FIXME" not in text
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{node.name} has {length} lines"


def test_public_names_are_exported_and_sorted() -> None:
    assert replog.__all__ == sorted(replog.__all__, key=lambda name: (name.startswith("_"), name))
    for name in replog.__all__:
        assert hasattr(replog, name), name


def _undocumented(path: Path) -> list[str]:
    """Public functions, classes and methods without a docstring.

    A method of a private class, or one whose name a documented method of another class in
    the same module carries (a Protocol it implements), inherits that contract.
    """
    tree = ast.parse(path.read_text())
    documented: set[str] = set()
    classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    for cls in classes:
        for item in cls.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and ast.get_docstring(item):
                documented.add(item.name)
    missing = []
    for node in tree.body:
        is_definition = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        if is_definition and not node.name.startswith("_") and not ast.get_docstring(node):
            missing.append(node.name)
    for cls in classes:
        if cls.name.startswith("_"):
            continue
        for item in cls.body:
            if not isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if item.name.startswith("_") or ast.get_docstring(item) or item.name in documented:
                continue
            missing.append(f"{cls.name}.{item.name}")
    return missing


@pytest.mark.parametrize("path", _modules(SRC), ids=lambda p: str(p.relative_to(SRC)))
def test_public_functions_have_docstrings(path: Path) -> None:
    assert not _undocumented(path), f"add docstrings (what, not how) to {_undocumented(path)}"
