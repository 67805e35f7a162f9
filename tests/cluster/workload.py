"""A bounded concurrent workload with a Jepsen-style history, for the fault tests.

Producers send batches of 1..``max_batch`` records with unique values
(``b"p<worker>-<batch>-<i>"``) through the real client, ``replog.Client.produce_batch``,
leader-aware, with its own retries off so that every attempt is in the history. They retry
as a client that wants at-least-once delivery does: after ``fail`` (the server or the client
said the batch was certainly not applied) and after ``info`` (the outcome is unknown: a
timeout, a broken connection) they send the *same* values again, up to ``max_attempts``
times, then move on to the next batch. So a batch may be in the log more than once, but only
if some attempt of it had an unknown outcome. Each producer has one batch in flight at a
time. Every attempt is recorded (:class:`Attempt`) with the node the client sent it to.

With ``idempotent`` each producer is an idempotent producer (its own producer id, the
sequence of each batch fixed when the batch is made): it resends a batch after *any* error,
without an attempt limit, until acknowledged or stopped, as ``replog.Producer`` does, and
the checker then allows no duplicate at all (``check(..., exactly_once=True)``).

Consumers read every node directly (a raw ConsumeBatch per node, no leader search: a stale
read must be caught on the node that served it) and record each (offset, value) they were
shown. :mod:`tests.cluster.checker` judges the history afterwards.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from replog.client import Client
from replog.client.base import _DEFAULT, _PRODUCE
from replog.client.core import NO_RETRY, encode_batch_request, encode_values
from replog.errors import InvalidArgumentError, ReplogError, UnavailableError
from replog.v1 import log_pb2
from replog.v1.record_pb2 import Record

__all__ = ["OK", "FAIL", "INFO", "Attempt", "Seen", "Workload", "classify"]

OK, FAIL, INFO = "ok", "fail", "info"


def classify(error: ReplogError) -> str:
    """``fail`` when the error says the batch was certainly not applied, else ``info``."""
    if isinstance(error, UnavailableError) and error.certainly_not_applied:
        return FAIL
    if isinstance(error, InvalidArgumentError):  # refused before anything was appended
        return FAIL
    return INFO


@dataclass(frozen=True, slots=True)
class Attempt:
    """One ``produce_batch`` call: ``kind`` is ok / fail / info; ``offset`` (the base offset)
    only for ok. ``batch`` numbers a producer's batches; retries share it and ``values``."""

    worker: int
    batch: int
    attempt: int
    values: tuple[bytes, ...]
    node: str
    kind: str
    offset: int | None
    started: float
    finished: float
    error: str = ""

    @property
    def name(self) -> str:
        """``w<worker>#<batch>.<attempt>`` for messages."""
        return f"w{self.worker}#{self.batch}.{self.attempt}"


@dataclass(frozen=True, slots=True)
class Seen:
    """A record a consumer was shown by ``node``."""

    node: str
    offset: int
    value: bytes
    at: float


class _TracedClient(Client):
    """The real client, remembering which member it sent its last call to."""

    last_addr = ""

    def produce_idempotent(
        self, values: list[bytes], topic: str, partition: int, producer_id: int, sequence: int
    ) -> tuple[int, int]:
        """``produce_batch`` as an idempotent producer's batch (``sequence`` its first)."""
        request = encode_batch_request(encode_values(values), topic, partition)
        request += log_pb2.ProduceBatchRequest(
            producer_id=producer_id, base_sequence=sequence
        ).SerializeToString()  # a serialized message's fields may follow in any order
        response = self._call(
            "ProduceBatch",
            request,
            idempotent=False,
            timeout=_DEFAULT,  # the client's own timeout, as produce_batch uses
            route=_PRODUCE,
            topic=topic,
            partition=partition,
        )
        return int(response.base_offset), int(response.count)

    def _pick(self, route: str, topic: str = "", partition: int | None = None) -> str:
        addr = super()._pick(route, topic, partition)
        self.last_addr = addr
        return addr


class _NodeReader:
    """ConsumeBatch of one partition on exactly one node (no leader search, no retries)."""

    def __init__(self, addr: str, topic: str = "", partition: int = 0) -> None:
        self._topic, self._partition = topic, partition
        self._channel = grpc.insecure_channel(addr, options=[("grpc.enable_http_proxy", 0)])
        self._consume = self._channel.unary_unary(
            "/replog.v1.Log/ConsumeBatch",
            request_serializer=log_pb2.ConsumeBatchRequest.SerializeToString,
            response_deserializer=log_pb2.ConsumeBatchResponse.FromString,
        )

    def consume(self, offset: int, timeout: float) -> list[Record] | None:
        request = log_pb2.ConsumeBatchRequest(
            offset=offset, max_records=200, topic=self._topic, partition=self._partition
        )
        try:
            return list(self._consume(request, timeout=timeout).records)
        except grpc.RpcError:
            return None

    def close(self) -> None:
        self._channel.close()


@dataclass
class Workload:
    """``targets()`` gives the (name, gRPC address) pairs that may be used now."""

    targets: Callable[[], list[tuple[str, str]]]
    producers: int = 4
    consumers: int = 2
    max_ops: int = 400
    """Batches per producer; the whole run is also bounded by ``stop()``/``max_s``."""
    max_s: float = 60.0
    timeout_s: float = 1.0
    max_batch: int = 50
    min_batch: int = 1
    value_bytes: int = 0
    """Pad each value to this size (big batches span several AppendEntries)."""
    max_attempts: int = 5
    idempotent: bool = False
    """Producer ids and sequences; retry every batch until acknowledged (no max_attempts)."""
    seed: int = 0
    topic: str = ""
    partition: int = 0
    """The partition every batch goes to and the consumers read ("" = ``default``/0)."""
    ops: list[Attempt] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._readers: dict[str, _NodeReader] = {}
        self._names: dict[str, str] = {}  # address -> node name, every address ever seen
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    # -- control ----------------------------------------------------------------------------

    def start(self) -> Workload:
        self._deadline = time.monotonic() + self.max_s
        for i in range(self.producers):
            self._spawn(self._produce, i)
        for i in range(self.consumers):
            self._spawn(self._consume, i)
        return self

    def _spawn(self, fn: Callable[[int], None], i: int) -> None:
        def run() -> None:
            try:
                fn(i)
            except BaseException as exc:  # a bug in the harness must fail the test
                self.errors.append(exc)

        thread = threading.Thread(target=run, name=f"{fn.__name__}-{i}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> Workload:
        """Stop every worker and wait for them (each finishes its current call)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout_s * 3 + 5)
        assert not any(t.is_alive() for t in self._threads), "a workload thread hangs"
        for reader in self._readers.values():
            reader.close()
        assert not self.errors, self.errors
        return self

    def producing(self) -> bool:
        """Whether a producer is still running (not stopped, nor out of ``max_ops``/``max_s``)."""
        return any(t.is_alive() for t in self._threads if t.name.startswith("_produce"))

    def acked(self) -> list[Attempt]:
        with self._lock:
            return [op for op in self.ops if op.kind == OK]

    def wait_acked(self, more: int, timeout: float, what: str = "") -> float:
        """Wait until ``more`` further batches were acknowledged; return when the first was."""
        base = len(self.acked())
        deadline = time.monotonic() + timeout
        first: float | None = None
        while True:
            acked = self.acked()
            if len(acked) > base and first is None:
                first = min(op.finished for op in acked[base:])
            if len(acked) >= base + more:
                return first or time.monotonic()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {more} acknowledged batches {what} "
                    f"({len(acked) - base} came); last attempts:\n{self.timeline(30)}"
                )
            time.sleep(0.02)

    def timeline(self, last: int) -> str:
        """The last ``last`` attempts, one a line (for failure messages)."""
        with self._lock:
            ops = self.ops[-last:]
        return "\n".join(
            f"  {op.started:.2f}-{op.finished:.2f} {op.name} x{len(op.values)} {op.node} "
            f"{op.kind} {op.offset if op.offset is not None else ''} {op.error[:80]}"
            for op in ops
        )

    # -- workers ----------------------------------------------------------------------------

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _current(self) -> list[tuple[str, str]]:
        targets = self.targets()
        with self._lock:
            self._names.update((addr, name) for name, addr in targets)
        return targets

    def _client(self) -> tuple[_TracedClient, frozenset[str]] | None:
        targets = self._current()
        if not targets:
            return None
        addrs = [addr for _, addr in targets]
        client = _TracedClient(addrs, timeout=self.timeout_s, retry=NO_RETRY, refresh_s=1.0)
        return client, frozenset(addrs)

    def _produce(self, worker: int) -> None:
        rng = random.Random(self.seed * 1000 + worker)
        made: tuple[_TracedClient, frozenset[str]] | None = None
        producer_id = rng.getrandbits(62) + 1 if self.idempotent else 0
        sequence = 0
        try:
            for batch in range(self.max_ops):
                count = rng.randint(self.min_batch, self.max_batch)
                values = tuple(
                    (b"p%d-%d-%d-" % (worker, batch, i)).ljust(self.value_bytes, b".")
                    for i in range(count)
                )
                attempt = 0
                while (self.idempotent or attempt < self.max_attempts) and self._running():
                    # A client that failed against a changed membership is made again from
                    # the nodes up now (a restarted node listens on a new port).
                    if made is None or (attempt and made[1] != {a for _, a in self._current()}):
                        if made is not None:
                            made[0].close()
                        made = self._client()
                        if made is None:
                            self._stop.wait(0.05)
                            continue
                    op = self._attempt(
                        made[0], worker, batch, attempt, values, (producer_id, sequence)
                    )
                    with self._lock:
                        self.ops.append(op)
                    if op.kind == OK:
                        sequence += len(values)
                        break
                    attempt += 1
                    self._stop.wait(rng.uniform(0.02, 0.1))  # back off, as a client does
                if not self._running():
                    return
        finally:
            if made is not None:
                made[0].close()

    def _attempt(
        self,
        client: _TracedClient,
        worker: int,
        batch: int,
        attempt: int,
        values: tuple[bytes, ...],
        producer: tuple[int, int],
    ) -> Attempt:
        client.last_addr = ""
        started = time.monotonic()
        kind, offset, why = OK, None, ""
        try:
            partition = self.partition if self.topic or producer[0] else None
            if producer[0]:
                offset, count = client.produce_idempotent(
                    list(values), self.topic, self.partition, *producer
                )
            else:
                offset, count = client.produce_batch(
                    list(values), topic=self.topic, partition=partition
                )
            assert count == len(values), f"acknowledged {count} of {len(values)} records"
        except ReplogError as exc:
            kind, why = classify(exc), f"{type(exc).__name__}: {exc}"
        finished = time.monotonic()
        with self._lock:
            node = self._names.get(client.last_addr, client.last_addr or "?")
        return Attempt(worker, batch, attempt, values, node, kind, offset, started, finished, why)

    def _consume(self, worker: int) -> None:
        positions: dict[str, int] = {}
        for turn in itertools.count(worker):
            if not self._running():
                return
            targets = self._current()
            if not targets:
                self._stop.wait(0.05)
                continue
            name, addr = targets[turn % len(targets)]
            with self._lock:
                reader = self._readers.get(addr)
                if reader is None:
                    reader = _NodeReader(addr, self.topic, self.partition)
                    self._readers[addr] = reader
            records = reader.consume(positions.get(name, 0), self.timeout_s)
            if records is None:
                self._stop.wait(0.02)
                continue
            now = time.monotonic()
            seen = [Seen(name, r.offset, r.value, now) for r in records]
            with self._lock:
                self.seen.extend(seen)
            if seen:
                positions[name] = seen[-1].offset + 1
            else:
                self._stop.wait(0.02)
