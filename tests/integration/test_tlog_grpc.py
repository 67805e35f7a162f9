"""The Tlog gRPC service: the signed checkpoint and proofs a reader checks with the verifier
key alone; missing checkpoints are NOT_FOUND, impossible sizes INVALID_ARGUMENT."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from replog.client import Client
from replog.tlog.checkpoint import open_checkpoint
from replog.tlog.hashing import leaf_hash
from replog.tlog.keyfile import write_key_files
from replog.tlog.proof import verify_consistency, verify_inclusion, verify_range
from replog.v1 import tlog_pb2 as pb
from replog.v1 import tlog_pb2_grpc
from tests.integration.conftest import ThreadedServer, wait_until


def test_checkpoints_and_proofs_over_grpc_verify(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    keys = write_key_files(tmp_path / "keys", "n1")
    server = server_factory(
        tmp_path / "data", server_id="n1", signing_key=str(keys.private), checkpoint_interval_ms=20
    )
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = tlog_pb2_grpc.TlogStub(channel)

        def checkpoint(size: int = 0) -> str:
            return stub.GetCheckpoint(pb.GetCheckpointRequest(topic="default", size=size)).note

        with pytest.raises(grpc.RpcError) as missing:
            checkpoint()
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with Client(server.grpc_address) as client:
            client.produce_batch([f"record {i}".encode() for i in range(10)])
            wait_until(lambda: "\n10\n" in _quiet(checkpoint), 10, "the checkpoint of 10")
            client.produce_batch([b"more"] * 290)
            wait_until(lambda: "\n300\n" in _quiet(checkpoint), 10, "the checkpoint of 300")
            record = client.consume(7)
        old = open_checkpoint(checkpoint(10), keys.verifier, origin="n1/default/0")
        new = open_checkpoint(checkpoint(), keys.verifier, origin="n1/default/0")
        proof = stub.GetConsistencyProof(pb.GetConsistencyProofRequest(old_size=10, new_size=300))
        verify_consistency(old.size, new.size, old.root, new.root, list(proof.hashes))
        proof = stub.GetInclusionProof(pb.GetInclusionProofRequest(offset=7, tree_size=300))
        leaf = leaf_hash(record.SerializeToString())
        verify_inclusion(leaf, 7, 300, list(proof.hashes), new.root)
        with pytest.raises(grpc.RpcError) as too_big:
            stub.GetInclusionProof(pb.GetInclusionProofRequest(offset=7, tree_size=301))
        assert too_big.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _quiet(fn: Callable[[], str]) -> str:
    try:
        return fn()
    except grpc.RpcError:
        return ""


def test_a_range_proof_vouches_for_a_batch_and_impossible_ranges_are_invalid_argument(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    keys = write_key_files(tmp_path / "keys", "n1")
    server = server_factory(
        tmp_path / "data", server_id="n1", signing_key=str(keys.private), checkpoint_interval_ms=20
    )
    with Client(server.grpc_address) as client:
        client.produce_batch([f"record {i}".encode() for i in range(40)])
        records = client.consume_batch(10, max_records=20).records
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = tlog_pb2_grpc.TlogStub(channel)
        request = pb.GetCheckpointRequest(topic="default")
        wait_until(lambda: "\n40\n" in _quiet(lambda: stub.GetCheckpoint(request).note), 10, "40")
        checkpoint = open_checkpoint(stub.GetCheckpoint(request).note, keys.verifier)
        proof = stub.GetRangeProof(pb.GetRangeProofRequest(first_offset=10, count=20, tree_size=40))
        leaves = [leaf_hash(r.SerializeToString()) for r in records]
        verify_range(leaves, 10, 40, list(proof.hashes), checkpoint.root)
        for first, count, size in [(0, 0, 40), (30, 11, 40), (0, 1, 41), (40, 1, 40)]:
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetRangeProof(
                    pb.GetRangeProofRequest(first_offset=first, count=count, tree_size=size)
                )
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "Traceback" not in (refused.value.details() or "")
