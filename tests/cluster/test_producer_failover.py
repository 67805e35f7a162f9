"""The idempotent Producer against three ``replog serve`` processes while the leader is killed.

Every acknowledged record is in the log exactly once and in send order, a record is never
in the log twice (even one whose future failed: its batch was resent under the same
sequences), and a future fails only after the delivery timeout.
"""

from __future__ import annotations

import itertools
import threading
import time

from replog import Client, Producer
from replog.client.core import encode_batch_request, encode_record, producer_fields
from tests.cluster.conftest import ProcCluster
from tests.integration.conftest import wait_until

RECORDS = 20_000
ORDER_RECORDS = 30_000
DELIVERY_TIMEOUT_MS = 20_000


def read_all(client: Client) -> list[bytes]:
    """Every record of the default topic, from offset 0 to the high watermark."""
    values: list[bytes] = []
    offset = 0
    while True:
        batch = client.consume_batch(offset, max_records=5_000, min_offset=0)
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


def test_a_killed_leader_loses_no_acknowledged_record_and_duplicates_none(
    direct_procs: ProcCluster,
) -> None:
    procs = direct_procs.bootstrap(3)
    client = Client(procs.addresses(), timeout=2.0)
    probe_pid, _ = client.init_producer_id()
    probe_offset, _ = produce_once(client, probe_pid, b"probe")
    values = [b"v%06d" % i for i in range(RECORDS)]
    sent_at: list[float] = []
    failed_at: dict[int, float] = {}
    producer = Producer(
        client,
        max_in_flight=4,
        max_batch_records=200,
        max_buffered_records=1_000,  # back-pressure: sending goes on across the kill
        delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
        retry_backoff_ms=50,
    )
    futures = []

    def send_all() -> None:
        for i, value in enumerate(values):
            sent_at.append(time.monotonic())
            future = producer.send(value)
            future.add_done_callback(
                lambda f, i=i: f.exception() and failed_at.setdefault(i, time.monotonic())
            )
            futures.append(future)

    sender = threading.Thread(target=send_all)
    sender.start()
    wait_until(lambda: len(futures) > RECORDS // 3 and futures[RECORDS // 3].done(), 30, "sends")
    victim = procs.leader()
    assert victim is not None
    procs.nodes[victim].kill()  # SIGKILL, by PID, while records are in flight
    sender.join(60)
    producer.flush(timeout=DELIVERY_TIMEOUT_MS / 1000 + 30)
    producer.close()

    acknowledged = [i for i, f in enumerate(futures) if f.exception() is None]
    assert len(acknowledged) > RECORDS // 2
    for i, at in failed_at.items():
        assert at - sent_at[i] >= DELIVERY_TIMEOUT_MS / 1000, f"record {i} failed early"
    offsets = [futures[i].result() for i in acknowledged]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), "send order"
    survivor = Client(procs.addresses())  # the nodes still up
    log = read_all(survivor)
    produced = [v for v in log if v.startswith(b"v")]
    assert len(produced) == len(set(produced)), "a record was appended twice"
    acked = {values[i] for i in acknowledged}
    assert [v for v in produced if v in acked] == [values[i] for i in acknowledged]
    # The new leader deduplicates a retry of a batch the old one committed.
    assert produce_once(survivor, probe_pid, b"probe") == (probe_offset, True)
    survivor.close()
    client.close()


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
