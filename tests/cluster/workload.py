"""A bounded concurrent workload with a Jepsen-style history, for the fault tests.

Producers send unique values (``b"p<worker>-<seq>"``) one record per call, without
retries, to nodes chosen round-robin among the nodes that are up, and record every
invocation with its outcome: ``ok`` (acknowledged at an offset), ``fail`` (the server said it
certainly did not apply it) or ``info`` (unknown: a timeout or a broken connection, the record
may or may not be in the log). Consumers read from every node throughout and record each
(offset, value) they were shown. :mod:`tests.cluster.checker` judges the history afterwards.

Calls go to *that* node over a raw gRPC channel (:class:`NodeClient`), not through
``replog.Client``, which picks the leader itself: a fault test must know which node answered
(a follower forwards produces to its leader server-side, as it would for any client).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from replog.v1 import log_pb2
from replog.v1.record_pb2 import Record

__all__ = ["NodeClient", "Op", "Seen", "Workload"]


class NodeClient:
    """Produce and ConsumeBatch on exactly one node (no proxy, no retries, no leader search).

    ``produce`` returns ``("ok", offset, "")``, ``("fail", None, why)`` when the node said the
    record was certainly not applied, or ``("info", None, why)`` when the outcome is unknown.
    """

    def __init__(self, addr: str) -> None:
        self._channel = grpc.insecure_channel(addr, options=[("grpc.enable_http_proxy", 0)])
        self._produce = self._channel.unary_unary(
            "/replog.v1.Log/Produce",
            request_serializer=log_pb2.ProduceRequest.SerializeToString,
            response_deserializer=log_pb2.ProduceResponse.FromString,
        )
        self._consume = self._channel.unary_unary(
            "/replog.v1.Log/ConsumeBatch",
            request_serializer=log_pb2.ConsumeBatchRequest.SerializeToString,
            response_deserializer=log_pb2.ConsumeBatchResponse.FromString,
        )

    def produce(self, value: bytes, timeout: float) -> tuple[str, int | None, str]:
        request = log_pb2.ProduceRequest(record=Record(value=value))
        try:
            return "ok", int(self._produce(request, timeout=timeout).offset), ""
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            meta = dict(exc.trailing_metadata() or ()) if isinstance(exc, grpc.Call) else {}
            detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            why = f"{code.name if code else '?'}: {detail}"
            if code is grpc.StatusCode.UNAVAILABLE and meta.get("replog-not-applied") == "1":
                return "fail", None, why
            return "info", None, why

    def consume(self, offset: int, timeout: float) -> list[Record] | None:
        request = log_pb2.ConsumeBatchRequest(offset=offset, max_records=200)
        try:
            return list(self._consume(request, timeout=timeout).records)
        except grpc.RpcError:
            return None

    def close(self) -> None:
        self._channel.close()


@dataclass(frozen=True, slots=True)
class Op:
    """One produce: ``kind`` is ok / fail / info; ``offset`` only for ok."""

    worker: int
    value: bytes
    node: str
    kind: str
    offset: int | None
    started: float
    finished: float
    error: str = ""


@dataclass(frozen=True, slots=True)
class Seen:
    """A record a consumer was shown by ``node``."""

    node: str
    offset: int
    value: bytes
    at: float


@dataclass
class Workload:
    """``targets()`` gives the (name, gRPC address) pairs that may be used now."""

    targets: Callable[[], list[tuple[str, str]]]
    producers: int = 4
    consumers: int = 2
    max_ops: int = 400
    """Per producer; the whole run is also bounded by ``stop()``/``max_s``."""
    max_s: float = 60.0
    timeout_s: float = 1.0
    ops: list[Op] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._clients: dict[str, NodeClient] = {}
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
        for client in self._clients.values():
            client.close()
        assert not self.errors, self.errors
        return self

    def acked(self) -> list[Op]:
        with self._lock:
            return [op for op in self.ops if op.kind == "ok"]

    def wait_acked(self, more: int, timeout: float, what: str = "") -> float:
        """Wait until ``more`` further produces were acknowledged; return when the first was."""
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
                    f"timed out waiting for {more} acknowledged produces {what} "
                    f"({len(acked) - base} came); last ops:\n{self.timeline(30)}"
                )
            time.sleep(0.02)

    def timeline(self, last: int) -> str:
        """The last ``last`` produce ops, one a line (for failure messages)."""
        with self._lock:
            ops = self.ops[-last:]
        return "\n".join(
            f"  {op.started:.2f}-{op.finished:.2f} w{op.worker} {op.node} {op.kind} "
            f"{op.offset if op.offset is not None else ''} {op.error[:80]}"
            for op in ops
        )

    # -- workers ----------------------------------------------------------------------------

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _pick(self, turn: int) -> tuple[str, NodeClient] | None:
        targets = self.targets()
        if not targets:
            return None
        name, addr = targets[turn % len(targets)]
        with self._lock:
            client = self._clients.get(addr)
            if client is None:
                client = self._clients[addr] = NodeClient(addr)
        return name, client

    def _produce(self, worker: int) -> None:
        for seq in range(self.max_ops):
            if not self._running():
                return
            picked = self._pick(worker + seq)
            if picked is None:
                time.sleep(0.05)
                continue
            name, client = picked
            value = b"p%d-%d" % (worker, seq)
            started = time.monotonic()
            kind, offset, why = client.produce(value, self.timeout_s)
            op = Op(worker, value, name, kind, offset, started, time.monotonic(), why)
            with self._lock:
                self.ops.append(op)
            if op.kind != "ok":
                time.sleep(0.02)  # do not spin against a node that is down

    def _consume(self, worker: int) -> None:
        positions: dict[str, int] = {}
        for turn in itertools.count(worker):
            if not self._running():
                return
            picked = self._pick(turn)
            if picked is None:
                time.sleep(0.05)
                continue
            name, client = picked
            start = positions.get(name, 0)
            records = client.consume(start, self.timeout_s)
            if records is None:
                time.sleep(0.02)
                continue
            now = time.monotonic()
            seen = [Seen(name, r.offset, r.value, now) for r in records]
            with self._lock:
                self.seen.extend(seen)
            if seen:
                positions[name] = seen[-1].offset + 1
            else:
                time.sleep(0.02)
