"""Reads with ``verify=True`` against a real single node that signs checkpoints: honest records
verify (consume, consume_batch, stream, the async twin), and a record altered on disk, a
rewritten suffix, a forked or rolled-back log and a wrong key are refused with
VerificationError naming the first offset the reader cannot vouch for."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from replog.client import AsyncClient, Client
from replog.errors import DeadlineExceededError, InvalidArgumentError, VerificationError
from replog.storage import Log
from replog.storage.codec import FRAME_HEADER, crc32c, scan_frames
from replog.tlog.checkpoints import CheckpointStore
from replog.tlog.keyfile import KeyFiles, write_key_files
from replog.tlog.note import Signer
from replog.v1.record_pb2 import Header, Record
from tests.integration.conftest import ThreadedServer, wait_until

PARTITION = Path("topics") / "default" / "0"


@pytest.fixture
def keys(tmp_path: Path) -> KeyFiles:
    return write_key_files(tmp_path / "keys", "n1")


def signing_server(
    server_factory: Callable[..., ThreadedServer], data: Path, keys: KeyFiles, **settings: Any
) -> ThreadedServer:
    """A node that signs a checkpoint every 20 ms; its origin is n1/<topic>/<partition>
    whatever its port, so a reader's trust outlives a restart."""
    options = {"server_id": "n1", "signing_key": str(keys.private), "checkpoint_interval_ms": 20}
    return server_factory(data, **(options | settings))


def signed(data: Path, size: int) -> None:
    store = CheckpointStore(data / PARTITION / "tlog" / "checkpoints")
    wait_until(lambda: (store.latest_size() or 0) >= size, 10, f"a checkpoint of {size}")


def produce_numbered(client: Client, first: int, count: int, tag: str = "record") -> None:
    client.produce_batch([f"{tag} {i:04d}".encode() for i in range(first, first + count)])


def test_honest_reads_verify_and_their_leaves_are_the_records_as_parsed(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path, keys: KeyFiles
) -> None:
    data = tmp_path / "data"
    server = signing_server(server_factory, data, keys)
    key = keys.verifier.encode()
    with Client(server.grpc_address, verify_key=key) as client:
        produce_numbered(client, 0, 150)
        client.produce(b"keyed", key=b"k", headers=[("h", b"v")])
        client.produce_batch([Record(value=b"rec", key=b"k2", headers=[Header(key="a")])])
        assert client.consume(3, verify=True).value == b"record 0003"  # waits for a checkpoint
        batch = client.consume_batch(0, max_records=1000, verify=True)
        assert [r.offset for r in batch.records] == list(range(152))
        streamed = client.stream(100, verify=True)
        assert [next(streamed).offset for _ in range(52)] == list(range(100, 152))
        produce_numbered(client, 152, 10)  # the stream tails: verified once a checkpoint covers
        assert [next(streamed).offset for _ in range(10)] == list(range(152, 162))
        streamed.close()
        plain = client.consume_batch(0, max_records=1000).records

    async def read_async() -> list[Record]:
        async with AsyncClient(server.grpc_address, verify_key=key) as client:
            first = await client.consume(151, verify=True)
            batches = client.stream_batches(160, verify=True)
            tail = (await anext(batches)).records
            await batches.aclose()
            return [first, *tail, *(await client.consume_batch(0, verify=True)).records]

    async def read_without_a_key() -> None:
        async with AsyncClient(server.grpc_address) as client:
            with pytest.raises(InvalidArgumentError, match="verify_key"):
                client.stream(0, verify=True)

    assert [r.offset for r in asyncio.run(read_async())][:3] == [151, 160, 161]
    asyncio.run(read_without_a_key())
    server.stop()
    with Log(data / PARTITION) as log_:
        stored = log_.read_payloads(0, max_records=1000, max_bytes=1 << 24)
    assert [r.SerializeToString() for r in plain] == stored  # the leaf is the parsed record


def test_verify_needs_a_key_and_a_wrong_key_is_refused(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path, keys: KeyFiles
) -> None:
    server = signing_server(server_factory, tmp_path / "data", keys)
    with Client(server.grpc_address) as client:
        produce_numbered(client, 0, 5)
        with pytest.raises(InvalidArgumentError, match="verify_key"):
            client.stream(0, verify=True)
        with pytest.raises(InvalidArgumentError, match="verify_key"):
            client.consume(0, verify=True)
    other = Signer.parse(write_key_files(tmp_path / "other", "n1").private.read_text())
    with (
        Client(server.grpc_address, verify_key=other.verifier.encode()) as client,
        pytest.raises(VerificationError, match="not signed by n1") as refused,
    ):
        client.consume_batch(2, verify=True)
    assert refused.value.offset == 2


def test_records_past_the_newest_checkpoint_wait_for_one_then_time_out(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path, keys: KeyFiles
) -> None:
    server = signing_server(server_factory, tmp_path / "data", keys, checkpoint_interval_ms=60_000)
    with Client(server.grpc_address, verify_key=keys.verifier.encode()) as client:
        produce_numbered(client, 0, 5)
        with pytest.raises(DeadlineExceededError, match=r"no checkpoint .* covers offset 4 yet"):
            client.consume(4, verify=True, timeout=0.3)


def alter_stored_record(data: Path, marker: bytes) -> None:
    """Flip a byte of the stored record holding ``marker`` and fix its frame's CRC, as an
    attacker with the disk would: the storage layer cannot tell, only the tree can."""
    for path in sorted((data / PARTITION).glob("*.store")):
        content = bytearray(path.read_bytes())
        scan = scan_frames(bytes(content), 0, 1 << 20)
        for position, payload in zip(scan.positions, scan.payloads, strict=True):
            if marker in payload:
                altered = payload.replace(marker, marker[:-1] + b"X")
                start = position + FRAME_HEADER.size
                content[start : start + len(payload)] = altered
                content[position : position + FRAME_HEADER.size] = FRAME_HEADER.pack(
                    len(altered), crc32c(altered)
                )
                path.write_bytes(bytes(content))
                return
    raise AssertionError(f"no stored record holds {marker!r}")


def test_a_record_altered_in_a_sealed_segment_is_named_by_its_offset(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path, keys: KeyFiles
) -> None:
    data = tmp_path / "data"
    server = signing_server(server_factory, data, keys, segment_bytes=4096, max_record_bytes=1024)
    with Client(server.grpc_address) as client:
        for first in range(0, 600, 100):
            produce_numbered(client, first, 100)
    signed(data, 600)
    server.stop()
    assert len(list((data / PARTITION).glob("*.store"))) > 2  # record 77 is in a sealed one
    alter_stored_record(data, b"record 0077")
    server = signing_server(server_factory, data, keys, segment_bytes=4096, max_record_bytes=1024)
    with Client(server.grpc_address, verify_key=keys.verifier.encode()) as client:
        streamed = client.stream(0, verify=True)
        with pytest.raises(VerificationError, match="record 77 ") as caught:
            next(streamed)
        assert caught.value.offset == 77
        with pytest.raises(VerificationError) as caught:
            client.consume(77, verify=True)
        assert caught.value.offset == 77
        assert client.consume(78, verify=True).value == b"record 0078"


def test_a_suffix_rewritten_after_the_trusted_checkpoint_is_caught_at_its_first_offset(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path, keys: KeyFiles
) -> None:
    data, state = tmp_path / "data", tmp_path / "witness.json"
    key = keys.verifier.encode()
    server = signing_server(server_factory, data, keys)
    with Client(server.grpc_address, verify_key=key, verify_state=state) as client:
        produce_numbered(client, 0, 200)
        signed(data, 200)
        assert len(client.consume_batch(0, verify=True).records) == 200  # trusts 200
        produce_numbered(client, 200, 100)
    signed(data, 300)
    server.stop()
    with Log(data / PARTITION) as log_:  # the history after 200 rewritten behind the server
        log_.truncate_after(199)
        log_.append_batch([f"forged {i:04d}".encode() for i in range(200, 300)])
    server = signing_server(server_factory, data, keys)
    with (
        Client(server.grpc_address, verify_key=key, verify_state=state) as client,
        pytest.raises(VerificationError, match="does not extend") as caught,
    ):
        client.consume(5, verify=True)
    assert caught.value.offset == 200
    assert os.stat(state).st_mode & 0o777 == 0o600


def test_the_state_file_catches_a_rollback_and_a_fork_after_a_client_restart(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path, keys: KeyFiles
) -> None:
    data, state, key = tmp_path / "data", tmp_path / "witness.json", keys.verifier.encode()
    server = signing_server(server_factory, data, keys)
    with Client(server.grpc_address) as client:
        produce_numbered(client, 0, 100)
    signed(data, 100)
    server.stop()
    shutil.copytree(data, tmp_path / "older")  # the log as it was at 100 records
    server = signing_server(server_factory, data, keys)
    with Client(server.grpc_address, verify_key=key, verify_state=state) as client:
        produce_numbered(client, 100, 50)
        assert client.consume(149, verify=True).offset == 149  # trusts a checkpoint >= 150
    server.stop()
    older = signing_server(server_factory, tmp_path / "older", keys)
    with (
        Client(older.grpc_address, verify_key=key, verify_state=state) as client,
        pytest.raises(VerificationError, match="rolled back") as caught,
    ):
        client.consume(3, verify=True)
    assert caught.value.offset == 100
    older.stop()
    forked = signing_server(server_factory, tmp_path / "forked", keys)  # another history
    with Client(forked.grpc_address, verify_key=key) as client:
        produce_numbered(client, 0, 200, tag="other")
    signed(tmp_path / "forked", 200)
    with (
        Client(forked.grpc_address, verify_key=key, verify_state=state) as client,
        pytest.raises(VerificationError, match="does not extend") as caught,
    ):
        client.consume(3, verify=True)
    assert caught.value.offset == 150
