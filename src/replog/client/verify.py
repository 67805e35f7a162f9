"""Verified reads (``verify=True``): every record a read returns is first proven to be the
leaf at its offset of a checkpoint signed by the pinned key, and each newer checkpoint to
extend the last one trusted (``verify_state``), so a server cannot rewrite, fork or roll
back a log without the reader noticing. I/O-free: ``RecordVerifier.steps`` yields the calls
to make (``Call``) and the pauses to take (``Wait``); the sync and async clients run them.

What is hashed is what the server sent: a verifying read's stub keeps each record's bytes as
they arrived (``RawBatch``), the stored bytes the tree's leaf was made from, and the Records
returned are parsed from those same bytes. One range proof (``GetRangeProof``: O(log n)
hashes) vouches for a batch's contiguous records; only when it fails are narrower ranges
asked for, to name the first record that does not verify.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from replog.client.core import DEFAULT_TOPIC, Batch, batch_from
from replog.client.verify_state import Trusted, TrustStore
from replog.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    VerificationError,
)
from replog.tlog.checkpoint import Checkpoint, open_checkpoint
from replog.tlog.hashing import leaf_hash
from replog.tlog.note import Verifier
from replog.tlog.proof import verify_consistency, verify_range
from replog.v1 import log_pb2, tlog_pb2

__all__ = [
    "VERIFIED",
    "VERIFY_METHODS",
    "Call",
    "RawBatch",
    "RecordVerifier",
    "Wait",
    "split_records",
]

#: The suffix of a read's verifying stub (its answer's record bytes kept as they arrived).
VERIFIED = ":verified"
_TLOG = "/replog.v1.Tlog/"
_FIRST_POLL_S = 0.05
_MAX_POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class RawBatch:
    """A read's answer with each record's bytes as the server sent them (``leaves``)."""

    batch: Batch
    leaves: list[bytes]


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while position < len(data) and shift < 64:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
    raise VerificationError("the server's answer is not valid protobuf")


def split_records(data: bytes) -> list[bytes]:
    """The bytes of every field-1 (``records``) value of a serialized message, in order."""
    out: list[bytes] = []
    position, end = 0, len(data)
    while position < end:
        key, position = _read_varint(data, position)
        wire_type = key & 7
        if wire_type == 0:
            _, position = _read_varint(data, position)
        elif wire_type == 2:
            length, position = _read_varint(data, position)
            if key >> 3 == 1:
                out.append(data[position : position + length])
            position += length
        elif wire_type in (1, 5):
            position += 8 if wire_type == 1 else 4
        else:
            raise VerificationError("the server's answer is not valid protobuf")
    if position != end:
        raise VerificationError("the server's answer is not valid protobuf")
    return out


def raw_batch(data: bytes) -> RawBatch:
    """A ConsumeBatchResponse's batch and its records' bytes."""
    return RawBatch(batch_from(log_pb2.ConsumeBatchResponse.FromString(data)), split_records(data))


def raw_record(data: bytes) -> RawBatch:
    """A ConsumeResponse's record (a batch of one) and its bytes."""
    record = log_pb2.ConsumeResponse.FromString(data).record
    return RawBatch(Batch([record], 0), split_records(data))


def _tlog(request: Any, response: Any) -> tuple[str, Any, Callable[[bytes], Any]]:
    return ("uu", request.SerializeToString, response.FromString)


#: stub name -> (kind, method path, request serializer, response deserializer).
VERIFY_METHODS: dict[str, tuple[str, str, Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    "Consume" + VERIFIED: (
        "uu",
        "/replog.v1.Log/Consume",
        log_pb2.ConsumeRequest.SerializeToString,
        raw_record,
    ),
    "ConsumeBatch" + VERIFIED: (
        "uu",
        "/replog.v1.Log/ConsumeBatch",
        log_pb2.ConsumeBatchRequest.SerializeToString,
        raw_batch,
    ),
    "ConsumeBatchStream" + VERIFIED: (
        "us",
        "/replog.v1.Log/ConsumeBatchStream",
        log_pb2.ConsumeBatchRequest.SerializeToString,
        raw_batch,
    ),
    **{
        _TLOG + name: (kind, _TLOG + name, ser, de)
        for name, (kind, ser, de) in {
            "GetCheckpoint": _tlog(tlog_pb2.GetCheckpointRequest, tlog_pb2.GetCheckpointResponse),
            "GetConsistencyProof": _tlog(
                tlog_pb2.GetConsistencyProofRequest, tlog_pb2.ProofResponse
            ),
            "GetRangeProof": _tlog(tlog_pb2.GetRangeProofRequest, tlog_pb2.ProofResponse),
        }.items()
    },
}


@dataclass(frozen=True, slots=True)
class Call:
    """A step: make unary call ``method`` (a stub name) with ``request``, send back its
    answer (or throw its ReplogError in)."""

    method: str
    request: Any


@dataclass(frozen=True, slots=True)
class Wait:
    """A step: pause ``seconds`` (waiting for the server to sign a newer checkpoint)."""

    seconds: float


Step = Call | Wait


def _runs(raw: RawBatch) -> list[tuple[int, list[bytes]]]:
    """The batch's records as runs of consecutive offsets: (first offset, their bytes)."""
    records = raw.batch.records
    if len(records) != len(raw.leaves):
        raise VerificationError("the server's answer does not hold the records it lists")
    runs: list[tuple[int, list[bytes]]] = []
    for record, leaf in zip(records, raw.leaves, strict=True):
        if runs and runs[-1][0] + len(runs[-1][1]) == record.offset:
            runs[-1][1].append(leaf)
        else:
            runs.append((record.offset, [leaf]))
    return runs


class RecordVerifier:
    """Proves records against the checkpoints of a log signed by ``key``, trusting what
    ``trust`` holds and moving it on only along consistency proofs. ``clock`` (monotonic
    seconds) bounds the wait for a checkpoint that covers a record."""

    def __init__(self, key: Verifier, trust: TrustStore, clock: Callable[[], float]) -> None:
        self.key = key
        self.trust = trust
        self.clock = clock
        self._origins: dict[tuple[str, int], str] = {}  # the logs whose newest was checked

    def steps(
        self, raw: RawBatch, topic: str, partition: int, timeout: float | None
    ) -> Generator[Step, Any, Batch]:
        """Verify every record of ``raw`` and return its batch; VerificationError naming the
        first record (offset) that cannot be vouched for, DeadlineExceededError if no
        checkpoint covers the batch within ``timeout`` seconds."""
        topic = topic or DEFAULT_TOPIC
        deadline = None if timeout is None else self.clock() + timeout
        for start, leaves in _runs(raw):
            end = start + len(leaves)
            trusted = yield from self._covering(topic, partition, end, start, deadline)
            yield from self._prove(topic, partition, start, leaves, trusted)
        return raw.batch

    def _covering(
        self, topic: str, partition: int, need: int, first: int, deadline: float | None
    ) -> Generator[Step, Any, Trusted]:
        """A trusted checkpoint of at least ``need`` records (the server's newest is asked
        for once per client and log, and whenever the trusted one is too small)."""
        log = (topic, partition)
        delay = _FIRST_POLL_S
        while True:
            origin = self._origins.get(log)
            trusted = None if origin is None else self.trust.get(origin)
            if trusted is not None and trusted.size >= need:
                return trusted
            request = tlog_pb2.GetCheckpointRequest(topic=topic, partition=partition)
            try:
                answer = yield Call(_TLOG + "GetCheckpoint", request)
            except NotFoundError as exc:
                newest = f"the server: {exc}"
            else:
                trusted = yield from self._advance(log, answer.note, first)
                if trusted.size >= need:
                    return trusted
                newest = f"the newest is of {trusted.size} records"
            now = self.clock()
            if deadline is not None and now >= deadline:
                raise DeadlineExceededError(
                    f"no checkpoint of {topic}/{partition} covers offset {need - 1} yet ({newest})"
                )
            yield Wait(delay if deadline is None else min(delay, deadline - now))
            delay = min(2 * delay, _MAX_POLL_S)

    def _open(self, log: tuple[str, int], note: str, first: int) -> Checkpoint:
        """The checkpoint of a note, checked: signed by the key, of this topic/partition."""
        topic, partition = log
        try:
            checkpoint = open_checkpoint(note, self.key)
        except VerificationError as exc:
            raise VerificationError(
                f"the checkpoint of {topic}/{partition}: {exc}", offset=first
            ) from None
        suffix = f"/{topic}/{partition}"
        known = self._origins.get(log)
        if not checkpoint.origin.endswith(suffix) or len(checkpoint.origin) == len(suffix):
            raise VerificationError(
                f"the checkpoint is of log {checkpoint.origin!r}, not of one ending in {suffix}",
                offset=first,
            )
        if known is not None and checkpoint.origin != known:
            raise VerificationError(
                f"the checkpoint is of log {checkpoint.origin!r}, not {known!r} as before",
                offset=first,
            )
        return checkpoint

    def _advance(
        self, log: tuple[str, int], note: str, first: int
    ) -> Generator[Step, Any, Trusted]:
        """Trust the checkpoint of ``note`` once it is proven to extend the trusted one."""
        checkpoint = self._open(log, note, first)
        origin = checkpoint.origin
        new = Trusted(origin, checkpoint.size, checkpoint.root)
        while True:
            trusted = self.trust.get(origin)
            if trusted is not None and new.size < trusted.size:
                # a replica behind the one that signed the trusted checkpoint, or a rollback
                yield from self._behind(log, new, trusted)
                self._origins[log] = origin
                return trusted
            if trusted is not None and new.size == trusted.size and new.root != trusted.root:
                raise VerificationError(
                    f"{origin}'s checkpoint of {new.size} records has another root than the "
                    "one trusted: the log forked",
                    offset=first,
                )
            if trusted is not None and new.size > trusted.size:
                yield from self._consistent(log, trusted, new)
            if self.trust.advance(trusted, new):
                self._origins[log] = origin
                return new
            # another thread moved the trust on meanwhile: judge the checkpoint against that

    def _behind(
        self, log: tuple[str, int], older: Trusted, trusted: Trusted
    ) -> Generator[Step, Any, None]:
        """A server's newest checkpoint is older than the trusted one: fine (the trust
        stays) only if the server proves the trusted tree extends it. One that holds no
        tree of the trusted size (INVALID_ARGUMENT; a replica merely behind answers
        UNAVAILABLE and the call goes to another) was rolled back; a proof that fails
        means a fork."""
        request = tlog_pb2.GetConsistencyProofRequest(
            topic=log[0], partition=log[1], old_size=older.size, new_size=trusted.size
        )
        try:
            answer = yield Call(_TLOG + "GetConsistencyProof", request)
        except InvalidArgumentError:
            raise VerificationError(
                f"{trusted.origin}'s newest checkpoint is of {older.size} records, fewer than "
                f"the {trusted.size} already trusted, and the server holds no tree of "
                f"{trusted.size}: the log was rolled back",
                offset=older.size,
            ) from None
        try:
            verify_consistency(
                older.size, trusted.size, older.root, trusted.root, list(answer.hashes)
            )
        except (VerificationError, InvalidArgumentError) as exc:
            raise VerificationError(
                f"{trusted.origin}'s checkpoint of {older.size} records is not a prefix of the "
                f"one of {trusted.size} trusted: {exc}",
                offset=older.size,
            ) from None

    def _consistent(
        self, log: tuple[str, int], old: Trusted, new: Trusted
    ) -> Generator[Step, Any, None]:
        """Check the server's proof that ``new`` extends ``old``."""
        request = tlog_pb2.GetConsistencyProofRequest(
            topic=log[0], partition=log[1], old_size=old.size, new_size=new.size
        )
        try:
            answer = yield Call(_TLOG + "GetConsistencyProof", request)
            verify_consistency(old.size, new.size, old.root, new.root, list(answer.hashes))
        except (VerificationError, InvalidArgumentError) as exc:
            raise VerificationError(
                f"{new.origin}'s checkpoint of {new.size} records does not extend the one of "
                f"{old.size} trusted: {exc}",
                offset=old.size,
            ) from None

    def _prove(
        self, topic: str, partition: int, start: int, leaves: list[bytes], trusted: Trusted
    ) -> Generator[Step, Any, None]:
        """Check records ``start``, ``start + 1``, ... (their bytes) against ``trusted``;
        on failure narrow the range down to the first record that does not verify."""
        hashes = [leaf_hash(leaf) for leaf in leaves]
        if (yield from self._holds(topic, partition, start, hashes, trusted)):
            return
        low, high = 0, len(hashes)  # [low, high) fails to verify as a whole
        while high - low > 1:
            middle = (low + high) // 2
            if (yield from self._holds(topic, partition, start + low, hashes[low:middle], trusted)):
                low = middle
            else:
                high = middle
        raise VerificationError(
            f"record {start + low} of {topic}/{partition} is not the one {trusted.origin}'s "
            f"checkpoint of {trusted.size} records holds",
            offset=start + low,
        )

    def _holds(
        self, topic: str, partition: int, start: int, hashes: Sequence[bytes], trusted: Trusted
    ) -> Generator[Step, Any, bool]:
        """Whether the server's range proof shows ``hashes`` are leaves ``start``... of the
        trusted tree."""
        request = tlog_pb2.GetRangeProofRequest(
            topic=topic,
            partition=partition,
            first_offset=start,
            count=len(hashes),
            tree_size=trusted.size,
        )
        try:
            answer = yield Call(_TLOG + "GetRangeProof", request)
        except InvalidArgumentError as exc:  # e.g. it holds fewer records than it signed
            raise VerificationError(
                f"the server cannot prove records of {trusted.origin} from {start} against its "
                f"checkpoint of {trusted.size} records: {exc}",
                offset=start,
            ) from None
        try:
            verify_range(hashes, start, trusted.size, list(answer.hashes), trusted.root)
        except VerificationError:
            return False
        return True
