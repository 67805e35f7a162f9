"""The idempotent Producer against three ``replog serve`` processes while the leader is killed.

Every acknowledged record is in the log exactly once and in send order, a record is never
in the log twice (even one whose future failed: its batch was resent under the same
sequences), and a future fails only after the delivery timeout.
"""

from __future__ import annotations

import itertools
import threading
import time

from replog import Client, Producer, ReplogError
from replog.client.core import encode_batch_request, encode_record, producer_fields
from replog.client.producer import RecordFuture
from tests.cluster.conftest import ProcCluster
from tests.integration.conftest import wait_until

RECORDS = 20_000
ORDER_RECORDS = 30_000
DELIVERY_TIMEOUT_MS = 3_000
SHORT_TIMEOUT_MS = 1_500


def read_all(client: Client, committed: int = 0) -> list[bytes]:
    """Every record of the default topic, from offset 0 to the high watermark, read once the
    node asked has committed ``committed`` (a restarted replica may lag)."""
    values: list[bytes] = []
    offset = 0
    while True:
        batch = client.consume_batch(offset, max_records=5_000, min_offset=committed)
        values += [r.value for r in batch.records]
        if batch.next_offset is None or batch.next_offset >= batch.high_watermark:
            return values
        offset = batch.next_offset


def produce_once(client: Client, pid: int, value: bytes) -> tuple[int, bool]:
    """One idempotent batch of ``value`` as producer ``pid``, sequence 0."""
    request = encode_batch_request([encode_record(value)], "", 0) + producer_fields(pid, 0, 0)
    response = client._call(
        "ProduceBatch", request, idempotent=True, timeout=5, route="produce", partition=0
    )
    return int(response.base_offset), bool(response.duplicate)


class SendRun:
    """``values`` sent by one Producer from a thread of its own, each send and failure timed."""

    def __init__(self, producer: Producer, values: list[bytes]) -> None:
        self.producer = producer
        self.values = values
        self.sent_at: list[float] = []
        self.failed_at: dict[int, float] = {}
        self.futures: list[RecordFuture] = []
        self.thread = threading.Thread(target=self._send_all)
        self.thread.start()

    def _send_all(self) -> None:
        for i, value in enumerate(self.values):
            self.sent_at.append(time.monotonic())
            future = self.producer.send(value)
            future.add_done_callback(lambda f, i=i: self._done(i, f))
            self.futures.append(future)

    def _done(self, i: int, future: RecordFuture) -> None:
        if future.exception() is not None:
            self.failed_at[i] = time.monotonic()

    def done(self, count: int) -> bool:
        return len(self.futures) > count and self.futures[count].done()

    def finish(self, timeout_s: float) -> list[int]:
        """Wait for every send and answer; the indexes of the acknowledged records."""
        self.thread.join(timeout_s)
        self.producer.flush(timeout=timeout_s)
        self.producer.close()
        return [i for i, f in enumerate(self.futures) if f.exception() is None]

    def check(self, acknowledged: list[int], log: list[bytes], delivery_timeout_s: float) -> None:
        """Acknowledged records once each, in send order; none twice; failures late."""
        for i, at in self.failed_at.items():
            assert at - self.sent_at[i] >= delivery_timeout_s, f"record {i} failed early"
        offsets = [self.futures[i].result() for i in acknowledged]
        assert all(a < b for a, b in itertools.pairwise(offsets)), "out of send order"
        produced = [v for v in log if v.startswith(b"v")]
        assert len(produced) == len(set(produced)), "a record was appended twice"
        acked = {self.values[i] for i in acknowledged}
        assert [v for v in produced if v in acked] == [self.values[i] for i in acknowledged]


def producer_for(client: Client, delivery_timeout_ms: int) -> Producer:
    return Producer(
        client,
        max_in_flight=4,
        max_batch_records=200,
        max_buffered_records=1_000,  # back-pressure: sending goes on across the faults
        delivery_timeout_ms=delivery_timeout_ms,
        retry_backoff_ms=50,
    )


def test_a_killed_leader_loses_no_acknowledged_record_and_duplicates_none(
    direct_procs: ProcCluster,
) -> None:
    procs = direct_procs.bootstrap(3)
    client = Client(procs.addresses(), timeout=2.0)
    probe_pid, _ = client.init_producer_id()
    probe_offset, _ = produce_once(client, probe_pid, b"probe")
    run = SendRun(producer_for(client, DELIVERY_TIMEOUT_MS), [b"v%06d" % i for i in range(RECORDS)])
    wait_until(lambda: run.done(RECORDS // 3), 30, "sends")
    victim = procs.leader()
    assert victim is not None
    procs.nodes[victim].kill()  # SIGKILL, by PID, while records are in flight
    acknowledged = run.finish(DELIVERY_TIMEOUT_MS / 1000 + 60)
    assert len(acknowledged) > RECORDS // 2
    with Client(procs.addresses()) as survivor:  # the nodes still up
        run.check(acknowledged, read_all(survivor), DELIVERY_TIMEOUT_MS / 1000)
        # The new leader deduplicates a retry of a batch the old one committed.
        assert produce_once(survivor, probe_pid, b"probe") == (probe_offset, True)
    client.close()


def test_without_a_majority_records_fail_after_the_delivery_timeout_and_none_is_duplicated(
    direct_procs: ProcCluster,
) -> None:
    procs = direct_procs.bootstrap(3)
    client = Client(procs.addresses(), timeout=1.0)
    run = SendRun(producer_for(client, SHORT_TIMEOUT_MS), [b"v%06d" % i for i in range(6_000)])
    wait_until(lambda: run.done(2_000), 30, "sends")
    leader = procs.leader()
    assert leader is not None
    second = next(n for n in procs.names if n != leader)
    for name in (leader, second):
        procs.nodes[name].kill()  # the majority is gone, with records in flight
    acknowledged = run.finish(120)
    assert 2_000 <= len(acknowledged) < 6_000 and run.failed_at
    procs.nodes[second].start()  # a majority again, to read what was appended
    with Client(procs.addresses()) as reader:
        last = max(run.futures[i].result() for i in acknowledged)
        log = wait_until(lambda: _read_or_none(reader, last), 30, "the log to be readable")
        run.check(acknowledged, log, SHORT_TIMEOUT_MS / 1000)
    client.close()


def _read_or_none(client: Client, committed: int) -> list[bytes] | None:
    try:
        return read_all(client, committed)
    except ReplogError:
        return None


def test_on_three_nodes_three_runs_of_sends_are_appended_once_in_send_order(
    direct_procs: ProcCluster,
) -> None:
    procs = direct_procs.bootstrap(3)
    with Client(procs.addresses()) as client:
        ids = {client.init_producer_id() for _ in range(3)}
        assert len(ids) == 3 and all(pid > 0 and epoch == 0 for pid, epoch in ids)
        start = len(read_all(client))
        everything: list[bytes] = []
        for run in range(3):
            values = [b"r%d-%06d" % (run, i) for i in range(ORDER_RECORDS)]
            with Producer(client, max_in_flight=4, max_batch_records=1_000) as producer:
                futures = [producer.send(v) for v in values]
            assert producer.idempotent
            offsets = [f.result() for f in futures]
            assert all(a < b for a, b in itertools.pairwise(offsets)), f"run {run} out of order"
            everything += values
        assert read_all(client)[start:] == everything  # nothing twice, no gap
