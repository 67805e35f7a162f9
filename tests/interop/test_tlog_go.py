"""Go's golang.org/x/mod/sumdb (note and tlog, Debian's golang-golang-x-mod-dev) verifies
replog's checkpoints, tiles and proofs, and fails every tampered one: an independent
implementation agrees with replog's tree, so replog's verifiers are not merely self-consistent.

The Go checker (tlogcheck.go) rebuilds the tree from every leaf tile rather than trusting
tlog.TileHashReader, which can return hashes from unauthenticated tiles; the tampered-tile
tests below keep that honest.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from replog.tlog.checkpoint import Checkpoint, sign_checkpoint
from replog.tlog.keyfile import generate_signer
from replog.tlog.note import Signer
from replog.tlog.proof import consistency_proof, inclusion_proof
from replog.tlog.tile_files import TileDirectory
from replog.tlog.tiles import Tile

GOPATH = Path("/usr/share/gocode")
X_MOD = GOPATH / "src/golang.org/x/mod/sumdb/tlog"
SOURCE = Path(__file__).with_name("tlogcheck.go")
SIZE = 70_000  # three tile levels, partial tiles at each
ORIGIN = "interop.example/orders/0"
INSTALL = "apt-get install -y golang-go golang-golang-x-mod-dev"


@pytest.fixture(scope="module")
def tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go checker, built against Debian's golang.org/x/mod (GOPATH mode, no network)."""
    go = shutil.which("go")
    if go is None:
        pytest.skip(f"go is not installed; the Go interop test needs it ({INSTALL})")
    if not X_MOD.is_dir():
        pytest.skip(f"go is not installed with golang.org/x/mod in {GOPATH} ({INSTALL})")
    build = tmp_path_factory.mktemp("tlogcheck")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(build / "cache"),
        "GOFLAGS": "",
        "GOPROXY": "off",
    }
    binary = build / "tlogcheck"
    done = subprocess.run(
        [go, "build", "-o", str(binary), str(SOURCE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return binary


@dataclass
class Log:
    """A replog tree of SIZE records on disk, its signed checkpoint and proofs."""

    tiles: TileDirectory
    signer: Signer
    checkpoint: str
    request: dict[str, object]


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    directory = tmp_path_factory.mktemp("log") / "tlog"
    tiles = TileDirectory.open(directory, 0, lambda a, b: [])
    for start, stop in [(0, 1), (1, 300), (300, 65_537), (65_537, SIZE)]:
        tiles.append(f"record {i}".encode() for i in range(start, stop))
    signer = generate_signer("interop")
    tree = tiles.tree
    checkpoint = sign_checkpoint(Checkpoint(ORIGIN, SIZE, tree.root()), signer)
    indexes = [0, 1, 255, 256, 768, 65_535, 65_536, 69_999, 12_345]
    old_sizes = [1, 2, 3, 255, 256, 257, 1_000, 65_536, 65_537, 69_999, SIZE]
    request: dict[str, object] = {
        "verifier_key": signer.verifier.encode(),
        "signer_key": signer.encode(),
        "origin": ORIGIN,
        "checkpoint": checkpoint,
        "tiles_dir": str(directory),
        "inclusion": [
            {
                "index": i,
                "leaf_hash": b64(tree.stored_hash(0, i)),
                "proof": [b64(h) for h in inclusion_proof(tree, i, SIZE)],
            }
            for i in indexes
        ],
        "consistency": [
            {
                "old_size": m,
                "old_root": b64(tree.root(m)),
                "proof": [b64(h) for h in consistency_proof(tree, m, SIZE)],
            }
            for m in old_sizes
        ],
    }
    return Log(tiles, signer, checkpoint, request)


def run_check(binary: Path, request: dict[str, object], tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    done = subprocess.run(
        [str(binary), str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, done.stdout + done.stderr


def copy_tiles(log: Log, tmp_path: Path) -> Path:
    copy = tmp_path / "tiles"
    shutil.copytree(log.tiles.directory, copy)
    return copy


def flip_byte(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def test_go_sumdb_verifies_replogs_checkpoint_tiles_and_proofs(
    tlogcheck: Path, log: Log, tmp_path: Path
) -> None:
    code, out = run_check(tlogcheck, log.request, tmp_path)
    assert code == 0, out
    assert "ok checkpoint signed by interop: size 70000" in out
    assert "ok signer key: Go signs the same note" in out
    assert "ok inclusion: 9 proofs" in out and "ok consistency: 11 proofs" in out
    assert out.strip().endswith("ok all")


@pytest.mark.parametrize(
    "tile",
    [
        Tile(0, 3),  # the trap's own example: a leaf tile under a level-1 hash
        Tile(0, 273, 112),  # the partial leaf tile
        Tile(1, 0),
        Tile(1, 1, 17),
        Tile(2, 0, 1),
    ],
    ids=lambda tile: tile.path(),
)
def test_go_sumdb_fails_a_log_with_one_tampered_tile(
    tlogcheck: Path, log: Log, tmp_path: Path, tile: Tile
) -> None:
    tiles = copy_tiles(log, tmp_path)
    flip_byte(tiles / tile.path(), 20)
    code, out = run_check(tlogcheck, {**log.request, "tiles_dir": str(tiles)}, tmp_path)
    assert code == 1, out
    if tile.level == 0:
        assert "FAIL the tree rebuilt from the leaf tiles has root" in out, out
    else:
        assert f"FAIL tile {tile.path()} does not match the tree of the leaf tiles" in out, out


def test_go_sumdb_fails_a_log_with_a_tile_cut_short(
    tlogcheck: Path, log: Log, tmp_path: Path
) -> None:
    tiles = copy_tiles(log, tmp_path)
    path = tiles / Tile(0, 273, 112).path()
    path.write_bytes(path.read_bytes()[:-32])
    code, out = run_check(tlogcheck, {**log.request, "tiles_dir": str(tiles)}, tmp_path)
    assert code == 1 and "holds 3552 bytes, not 3584" in out, out


@pytest.mark.parametrize("kind", ["inclusion", "consistency"])
def test_go_sumdb_fails_a_tampered_proof(
    tlogcheck: Path, log: Log, tmp_path: Path, kind: str
) -> None:
    proofs = json.loads(json.dumps(log.request[kind]))
    victim = proofs[4]["proof"]
    raw = bytearray(base64.b64decode(victim[1]))
    raw[0] ^= 0x80
    victim[1] = b64(bytes(raw))
    code, out = run_check(tlogcheck, {**log.request, kind: proofs}, tmp_path)
    assert code == 1 and f"FAIL {kind}" in out, out


@pytest.mark.parametrize("tamper", ["size", "other key", "origin"])
def test_go_sumdb_fails_a_checkpoint_altered_or_signed_by_another_key(
    tlogcheck: Path, log: Log, tmp_path: Path, tamper: str
) -> None:
    tree = log.tiles.tree
    if tamper == "size":
        checkpoint = log.checkpoint.replace(f"\n{SIZE}\n", f"\n{SIZE + 1}\n")
    elif tamper == "other key":
        other = generate_signer("interop")
        checkpoint = sign_checkpoint(Checkpoint(ORIGIN, SIZE, tree.root()), other)
    else:
        checkpoint = sign_checkpoint(Checkpoint("other/log/0", SIZE, tree.root()), log.signer)
    request = {**log.request, "checkpoint": checkpoint, "signer_key": ""}
    code, out = run_check(tlogcheck, request, tmp_path)
    assert code == 1 and "FAIL checkpoint" in out, out
