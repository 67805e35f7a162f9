"""``replog verify``: an intact data directory verifies (exit 0); a record altered in a sealed
segment, an altered upper tile or a checkpoint signed by another key fails (exit 1) naming
where."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from replog.broker import Broker
from replog.broker.config import TopicConfig
from replog.cli.app import _register, app
from replog.storage.codec import FRAME_HEADER, FRAME_HEADER_BYTES, crc32c
from replog.tlog.checkpoint import Checkpoint, sign_checkpoint
from replog.tlog.checkpoints import CheckpointStore, publish_checkpoint
from replog.tlog.keyfile import generate_signer, read_signer, write_key_files

runner = CliRunner(env={"COLUMNS": "200"})
_register()
PARTITION = Path("topics") / "default" / "0"


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    keys = write_key_files(tmp_path / "keys", "n1")
    signer = read_signer(keys.private)
    directory = tmp_path / "data"
    broker = Broker(
        directory,
        defaults=TopicConfig(segment_bytes=16_384, max_record_bytes=1024, sync="never"),
        verifiable=True,
    )
    store = CheckpointStore(directory / PARTITION / "tlog" / "checkpoints")
    tree = broker.tree("default", 0)
    assert tree is not None
    for batch in range(3):
        broker.append_batch("default", [f"record {batch}-{i:03}".encode() for i in range(400)])
        publish_checkpoint(tree, store, tree.size, "n1/default/0", signer)
    broker.close()
    return directory, keys.public


def verify(directory: Path, key: Path) -> Result:
    return runner.invoke(app, ["verify", "--data-dir", str(directory), "--key", str(key)])


def test_an_intact_data_directory_verifies(data: tuple[Path, Path]) -> None:
    result = verify(*data)
    assert result.exit_code == 0, result.output
    assert "ok default/0: 1200 records, tree size 1200, 3 checkpoints" in result.output


def test_a_record_altered_in_a_sealed_segment_fails_naming_its_offset(
    data: tuple[Path, Path],
) -> None:
    directory, key = data
    stores = sorted((directory / PARTITION).glob("*.store"))
    assert len(stores) > 2
    raw = bytearray(stores[1].read_bytes())
    at = FRAME_HEADER_BYTES
    length, _ = FRAME_HEADER.unpack_from(raw, 0)
    payload = bytes(raw[at : at + length])
    altered = payload.replace(b"record", b"RECORD")
    raw[at : at + length] = altered
    raw[0:FRAME_HEADER_BYTES] = FRAME_HEADER.pack(len(altered), crc32c(altered))
    stores[1].write_bytes(bytes(raw))
    first = int(stores[1].name.split(".")[0])
    result = verify(directory, key)
    assert result.exit_code == 1, result.output
    assert f"FAIL default/0 at offset {first}:" in result.output


def test_an_altered_upper_tile_fails(data: tuple[Path, Path]) -> None:
    directory, key = data
    tile = directory / PARTITION / "tlog" / "tile" / "1" / "000.p" / "4"
    raw = bytearray(tile.read_bytes())
    raw[40] ^= 1
    tile.write_bytes(bytes(raw))
    result = verify(directory, key)
    assert result.exit_code == 1 and "tile/1/000.p/4 does not match" in result.output


def test_a_checkpoint_signed_by_another_key_fails(data: tuple[Path, Path]) -> None:
    directory, key = data
    store = CheckpointStore(directory / PARTITION / "tlog" / "checkpoints")
    other = generate_signer("n1")
    checkpoint = Checkpoint("n1/default/0", 1200, bytes(32))
    store.write(1200, sign_checkpoint(checkpoint, other))
    result = verify(directory, key)
    assert result.exit_code == 1, result.output
    assert "FAIL default/0" in result.output
