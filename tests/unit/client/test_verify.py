"""The I/O-free verifier of verify=True reads, run against a log held in memory (a MerkleTree
and a signer answer its calls): one proof per batch, the first bad record named, rollbacks,
forks, foreign origins and late checkpoints refused; and the witness state file."""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from replog.client.core import Batch
from replog.client.verify import Call, RawBatch, RecordVerifier, Wait, split_records
from replog.client.verify_state import Trusted, TrustStore
from replog.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    VerificationError,
)
from replog.tlog.checkpoint import Checkpoint, sign_checkpoint
from replog.tlog.hashing import leaf_hash
from replog.tlog.keyfile import generate_signer
from replog.tlog.proof import consistency_proof, range_proof
from replog.tlog.tree import MerkleTree
from replog.v1 import log_pb2, tlog_pb2
from replog.v1.record_pb2 import Record

SIGNER = generate_signer("n1")


class FakeLog:
    """A partition's records, tree and newest signed checkpoint, answering the verifier."""

    def __init__(self, count: int, origin: str = "n1/default/0", tag: str = "r") -> None:
        self.payloads = [
            Record(value=f"{tag}{i}".encode(), offset=i).SerializeToString() for i in range(count)
        ]
        self.tree = MerkleTree.from_leaf_hashes(map(leaf_hash, self.payloads))
        self.origin = origin
        self.signed: int | None = count
        self.calls: list[str] = []

    def note(self, size: int) -> str:
        return sign_checkpoint(Checkpoint(self.origin, size, self.tree.root(size)), SIGNER)

    def answer(self, call: Call) -> Any:
        self.calls.append(call.method.rsplit("/", 1)[-1])
        r = call.request
        if isinstance(r, tlog_pb2.GetCheckpointRequest):
            if self.signed is None:
                raise NotFoundError("no checkpoint has been published yet")
            return tlog_pb2.GetCheckpointResponse(note=self.note(self.signed))
        if isinstance(r, tlog_pb2.GetConsistencyProofRequest):
            return tlog_pb2.ProofResponse(
                hashes=consistency_proof(self.tree, r.old_size, r.new_size)
            )
        start, end = r.first_offset, r.first_offset + r.count
        return tlog_pb2.ProofResponse(hashes=range_proof(self.tree, start, end, r.tree_size))

    def batch(self, start: int, end: int, altered: int | None = None) -> RawBatch:
        leaves = list(self.payloads[start:end])
        if altered is not None:
            leaves[altered - start] = Record(value=b"forged", offset=altered).SerializeToString()
        return RawBatch(Batch([Record.FromString(p) for p in leaves], end), leaves)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(steps: Generator[Any, Any, Batch], log: FakeLog, clock: Clock | None = None) -> Batch:
    """Drive the verifier's steps as a client does (waits move the fake clock on)."""
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = steps.send(reply) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        reply = error = None
        if isinstance(step, Wait):
            assert clock is not None and step.seconds > 0
            clock.now += step.seconds
            continue
        try:
            reply = log.answer(step)
        except (NotFoundError, InvalidArgumentError) as exc:  # a server's refusal, as a client
            error = exc


def verifier(trust: TrustStore | None = None, clock: Clock | None = None) -> RecordVerifier:
    return RecordVerifier(SIGNER.verifier, trust or TrustStore(), clock or Clock())


def test_a_batch_costs_one_range_proof_once_its_checkpoint_is_trusted() -> None:
    log, check = FakeLog(1000), verifier()
    batch = run(check.steps(log.batch(0, 600), "", 0, 5.0), log)
    assert [r.offset for r in batch.records] == list(range(600))
    run(check.steps(log.batch(600, 1000), "default", 0, 5.0), log)
    assert log.calls == ["GetCheckpoint", "GetRangeProof", "GetRangeProof"]


@pytest.mark.parametrize("altered", [0, 1, 77, 298, 299])
def test_an_altered_record_is_named_by_its_offset(altered: int) -> None:
    log = FakeLog(300)
    with pytest.raises(VerificationError, match=f"record {altered} ") as caught:
        run(verifier().steps(log.batch(0, 300, altered), "", 0, 5.0), log)
    assert caught.value.offset == altered


def test_a_newer_checkpoint_is_trusted_only_along_a_consistency_proof() -> None:
    trust = TrustStore()
    log = FakeLog(500)
    log.signed = 200
    run(verifier(trust).steps(log.batch(0, 100), "", 0, 5.0), log)
    log.signed = 500
    run(verifier(trust).steps(log.batch(300, 400), "", 0, 5.0), log)
    assert trust.get("n1/default/0") == Trusted("n1/default/0", 500, log.tree.root(500))
    assert log.calls.count("GetConsistencyProof") == 1
    forked = FakeLog(600, tag="other")  # another history under the same key and origin
    with pytest.raises(VerificationError, match="does not extend") as caught:
        run(verifier(trust).steps(forked.batch(0, 10), "", 0, 5.0), forked)
    assert caught.value.offset == 500
    forked.signed = 500
    with pytest.raises(VerificationError, match="forked") as caught:
        run(verifier(trust).steps(forked.batch(0, 10), "", 0, 5.0), forked)
    log.signed = 400  # a replica that signed less so far (it learnt the commit later)
    run(verifier(trust).steps(log.batch(0, 10), "", 0, 5.0), log)  # not a rollback
    assert trust.get("n1/default/0") == Trusted("n1/default/0", 500, log.tree.root(500))
    rolled = FakeLog(400)  # the same history, cut back to 400 records: no tree of 500
    with pytest.raises(VerificationError, match="rolled back") as caught:
        run(verifier(trust).steps(rolled.batch(0, 10), "", 0, 5.0), rolled)
    assert caught.value.offset == 400
    assert trust.get("n1/default/0") == Trusted("n1/default/0", 500, log.tree.root(500))
    older_fork = FakeLog(600, tag="other")
    older_fork.signed = 300  # an older checkpoint that is not a prefix of the trusted tree
    with pytest.raises(VerificationError, match="not a prefix") as caught:
        run(verifier(trust).steps(older_fork.batch(0, 10), "", 0, 5.0), older_fork)
    assert caught.value.offset == 300


@pytest.mark.parametrize("origin", ["n1/default/1", "n1/other/0", "/default/0", "default/0"])
def test_a_checkpoint_of_another_log_is_refused(origin: str) -> None:
    log = FakeLog(10, origin=origin)
    with pytest.raises(VerificationError, match="not of one ending in /default/0") as caught:
        run(verifier().steps(log.batch(4, 6), "", 0, 5.0), log)
    assert caught.value.offset == 4


def test_records_past_every_checkpoint_wait_then_fail_with_deadline_exceeded() -> None:
    clock, log = Clock(), FakeLog(10)
    log.signed = None
    with pytest.raises(DeadlineExceededError, match=r"covers offset 9 yet .*published yet"):
        run(verifier(clock=clock).steps(log.batch(0, 10), "", 0, 2.0), log, clock)
    assert clock.now == pytest.approx(2.0)  # waited exactly the timeout
    log.signed, clock.now = 5, 0.0
    with pytest.raises(DeadlineExceededError, match=r"covers offset 9 yet .*newest is of 5"):
        run(verifier(clock=clock).steps(log.batch(0, 10), "", 0, 1.0), log, clock)


def test_split_records_gives_each_records_bytes_as_sent() -> None:
    records = [Record(value=b"x" * n, offset=n) for n in (0, 1, 200, 70_000)]
    answer = log_pb2.ConsumeBatchResponse(records=records, high_watermark=9, next_offset=300)
    data = answer.SerializeToString() + b"\x25\x00\x00\x00\x00\x29" + bytes(8)  # unknown fields
    assert split_records(data) == [r.SerializeToString() for r in records]
    for broken in (data[:-1], b"\x0a\x05ab", b"\x0f", b"\x0a\xff\xff"):
        with pytest.raises(VerificationError):
            split_records(broken)


def test_the_state_file_is_kept_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = TrustStore(path)
    first = Trusted("n1/default/0", 10, b"\x01" * 32)
    assert store.advance(None, first)
    assert not store.advance(None, Trusted("n1/default/0", 20, b"\x02" * 32))  # moved on
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert TrustStore(path).get("n1/default/0") == first
    assert json.loads(path.read_text())["logs"]["n1/default/0"]["size"] == 10
    path.write_text('{"version": 1, "logs": {"a": {"size": -1, "root": ""}}}')
    with pytest.raises(InvalidArgumentError, match="not a replog verify state"):
        TrustStore(path)
    with pytest.raises(InvalidArgumentError, match="directory"):
        TrustStore(tmp_path / "missing" / "state.json")
