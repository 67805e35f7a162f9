"""How the Producer cuts batches and resolves futures, against a fake ProduceBatch."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from replog import (
    Client,
    InvalidArgumentError,
    Producer,
    RecordTooLargeError,
    ServerError,
    UnavailableError,
)
from replog.client.admin import PartitionDescription, TopicDescription
from replog.client.partitioner import partition_for_key
from replog.client.producer import METADATA_MAX_AGE_S
from replog.errors import UnsupportedError
from replog.v1.log_pb2 import ACKS_LEADER, ProduceBatchRequest, ProduceBatchResponse
from replog.v1.record_pb2 import Record

LONG_LINGER_MS = 60_000


class FakeClient(Client):
    """Answers ProduceBatch in-process: appends to ``log``, or raises what ``fail`` says."""

    def __init__(self, max_value_bytes: int = 1 << 20) -> None:
        super().__init__("127.0.0.1:1")
        self.max_value_bytes = max_value_bytes
        self.log: list[bytes] = []
        self.batches: list[list[bytes]] = []
        self.requests: list[ProduceBatchRequest] = []
        self.partitions: int | None = None  # what describe_topic tells; None: refused
        self.described = 0
        self.describe_fail: Exception | None = None
        self.fail: Exception | None = None
        self.lock = threading.Lock()

    def _call(
        self,
        method: str,
        request: Any,
        *,
        idempotent: bool,
        timeout: Any,
        route: str = "",
        topic: str = "",
        partition: int | None = None,
    ) -> Any:
        if method == "InitProducerId":  # an older server: no producer ids
            raise UnsupportedError("the server does not offer this call (InitProducerId)")
        assert method == "ProduceBatch" and isinstance(request, bytes)
        assert route == "produce", "a producer's batches go to the leader"
        parsed = ProduceBatchRequest.FromString(request)
        assert topic == parsed.topic  # routed as the request says: that partition's leader
        assert partition == (parsed.partition if parsed.HasField("partition") else None)
        values = [r.value for r in parsed.records]
        with self.lock:
            self.batches.append(values)
            self.requests.append(parsed)
            if self.fail is not None:
                raise self.fail
            for value in values:
                if len(value) > self.max_value_bytes:
                    raise RecordTooLargeError(len(value), self.max_value_bytes)
            base = len(self.log)
            self.log += values
        partition = parsed.partition if parsed.HasField("partition") else 0
        return ProduceBatchResponse(base_offset=base, count=len(values), partition=partition)

    def describe_topic(self, name: str, *, timeout: Any = None) -> TopicDescription:
        self.described += 1
        if self.describe_fail is not None:
            raise self.describe_fail
        if self.partitions is None:
            raise UnsupportedError("this fake does not describe topics")
        parts = tuple(
            PartitionDescription(p, "n", ("n",), ("n",), 0, 0, 0) for p in range(self.partitions)
        )
        return TopicDescription(name, {}, 1, parts)


@pytest.fixture
def fake() -> Iterator[FakeClient]:
    client = FakeClient()
    yield client
    client.close()


def test_batches_are_cut_at_the_record_limit(fake: FakeClient) -> None:
    with Producer(
        fake,
        enable_idempotence=False,
        max_batch_records=4,
        linger_ms=LONG_LINGER_MS,
        max_in_flight=1,
    ) as p:
        futures = [p.send(b"%d" % i) for i in range(10)]
    assert [len(b) for b in fake.batches] == [4, 4, 2]
    assert [f.result() for f in futures] == list(range(10))
    assert fake.log == [b"%d" % i for i in range(10)]


@pytest.mark.parametrize("bulk", [False, True], ids=["send", "send_many"])
def test_batches_are_cut_at_the_byte_limit(fake: FakeClient, bulk: bool) -> None:
    values = [b"x" * 40] * 10  # 42 bytes each in the request
    with Producer(
        fake,
        enable_idempotence=False,
        max_batch_bytes=100,
        linger_ms=LONG_LINGER_MS,
        max_in_flight=1,
    ) as p:
        futures = p.send_many(values) if bulk else [p.send(v) for v in values]
    assert [len(b) for b in fake.batches] == [2, 2, 2, 2, 2]
    assert [f.result() for f in futures] == list(range(10))


def test_send_many_fills_the_open_batch_then_starts_new_ones(fake: FakeClient) -> None:
    with Producer(
        fake,
        enable_idempotence=False,
        max_batch_records=5,
        linger_ms=LONG_LINGER_MS,
        max_in_flight=1,
    ) as p:
        first = [p.send(b"a"), p.send(b"b")]
        rest = p.send_many([b"%d" % i for i in range(9)])
    assert [len(b) for b in fake.batches] == [5, 5, 1]
    assert [f.result() for f in first + rest] == list(range(11))


def test_an_oversized_record_is_isolated_by_splitting_its_batch(fake: FakeClient) -> None:
    fake.max_value_bytes = 10
    values = [b"ok%d" % i for i in range(6)]
    values.insert(4, b"x" * 11)
    with Producer(fake, enable_idempotence=False, linger_ms=LONG_LINGER_MS, max_in_flight=1) as p:
        futures = p.send_many(values)
    assert isinstance(futures[4].exception(), RecordTooLargeError)
    assert [f.result() for i, f in enumerate(futures) if i != 4] == list(range(6))
    assert fake.log == [v for v in values if len(v) <= 10]  # order kept


def test_a_failed_batch_fails_every_future_in_it(fake: FakeClient) -> None:
    fake.fail = UnavailableError("down")
    with Producer(fake, enable_idempotence=False, linger_ms=LONG_LINGER_MS) as p:
        futures = [p.send(b"v") for _ in range(3)]
        p.flush()
    assert all(isinstance(f.exception(), UnavailableError) for f in futures)
    assert len(fake.batches) == 1  # an ambiguous failure is not retried


def test_an_unexpected_exception_still_resolves_the_futures(fake: FakeClient) -> None:
    fake.fail = RuntimeError("bug")
    with Producer(fake, enable_idempotence=False, linger_ms=LONG_LINGER_MS) as p:
        future = p.send(b"v")
    assert isinstance(future.exception(), ServerError)


def test_flush_with_a_timeout_gives_up_while_a_batch_is_unanswered(fake: FakeClient) -> None:
    with Producer(fake, enable_idempotence=False, linger_ms=LONG_LINGER_MS) as p:
        with fake.lock:  # the fake server hangs until released
            future = p.send(b"v")
            with pytest.raises(TimeoutError):
                p.flush(timeout=0.05)
        assert future.result(timeout=30) == 0


def test_without_the_partition_count_a_batch_never_holds_records_of_two_keys(
    fake: FakeClient,
) -> None:
    keys = [b"a", b"a", b"b", None, None, b"a"]
    with Producer(
        fake, enable_idempotence=False, linger_ms=LONG_LINGER_MS, max_in_flight=1, topic="orders"
    ) as p:
        futures = [p.send(b"%d" % i, key) for i, key in enumerate(keys)]
        futures += p.send_many([Record(value=b"6", key=b"c"), Record(value=b"7", key=b"c"), b"8"])
    batches = [[r.key for r in request.records] for request in fake.requests]
    # Keyless records join the batch they come to (the server puts them with its keys).
    assert batches == [[b"a", b"a"], [b"b", b"", b""], [b"a"], [b"c", b"c", b""]]
    assert fake.described == 1  # refused once; asked again only after METADATA_MAX_AGE_S
    assert all(r.topic == "orders" and not r.HasField("partition") for r in fake.requests)
    assert [f.result() for f in futures] == list(range(9))


def test_a_producer_for_one_partition_names_it_and_batches_every_key_together(
    fake: FakeClient,
) -> None:
    with Producer(
        fake, enable_idempotence=False, linger_ms=LONG_LINGER_MS, topic="orders", partition=2
    ) as p:
        futures = [p.send(b"%d" % i, b"k%d" % i) for i in range(5)]
    assert len(fake.requests) == 1
    assert (fake.requests[0].topic, fake.requests[0].partition) == ("orders", 2)
    assert [(f.result(), f.partition) for f in futures] == [(i, 2) for i in range(5)]
    assert fake.picker.read_floor(None, "orders", 2) == 4
    assert fake.picker.read_floor(None) == 0  # another partition's offsets


def test_with_the_partition_count_interleaved_keys_batch_up_per_partition_in_order(
    fake: FakeClient,
) -> None:
    fake.partitions = 4
    keys = [b"k%d" % i for i in range(40)]
    assert any(
        partition_for_key(a, 4) != partition_for_key(b, 4) for a, b in itertools.pairwise(keys)
    )  # the keys interleave partitions: one open batch per partition keeps them together
    with Producer(
        fake, enable_idempotence=False, linger_ms=LONG_LINGER_MS, max_in_flight=1, topic="orders"
    ) as p:
        futures = [p.send(b"%d" % i, key) for i, key in enumerate(keys)]
    for request in fake.requests:
        partitions = {partition_for_key(r.key, 4) for r in request.records}
        assert partitions == {request.partition}, request
    wanted = {partition_for_key(k, 4) for k in keys}
    assert sorted(r.partition for r in fake.requests) == sorted(wanted)  # one batch each
    assert fake.described == 1
    for partition in wanted:  # each partition's records in send order
        sent = [k for k in keys if partition_for_key(k, 4) == partition]
        (request,) = [r for r in fake.requests if r.partition == partition]
        assert [r.key for r in request.records] == sent
    assert [f.partition for f in futures] == [partition_for_key(k, 4) for k in keys]


def test_a_parked_partition_batch_still_goes_out_after_its_linger(fake: FakeClient) -> None:
    fake.partitions = 4
    a, b = (
        b"k0",
        next(
            k
            for k in (b"k%d" % i for i in range(1, 50))
            if partition_for_key(k, 4) != partition_for_key(b"k0", 4)
        ),
    )
    with Producer(fake, enable_idempotence=False, linger_ms=20, topic="orders") as p:
        first = p.send(b"a", a)  # parked when the next record goes to another partition
        second = p.send(b"b", b)
        # no flush: the linger sent both (the fake numbers one log for every partition)
        assert {first.result(5), second.result(5)} == {0, 1}
    assert len(fake.requests) == 2


def test_on_a_topic_of_one_partition_records_of_many_keys_share_a_batch(fake: FakeClient) -> None:
    fake.partitions = 1
    with Producer(fake, enable_idempotence=False, linger_ms=LONG_LINGER_MS) as p:
        futures = p.send_many([Record(value=b"v", key=b"k%d" % i) for i in range(50)])
        futures.append(p.send(b"keyless"))
    assert len(fake.requests) == 1 and fake.requests[0].partition == 0
    assert [f.result() for f in futures] == list(range(51))


def test_a_passing_failure_to_learn_the_count_keeps_routing_by_partition(
    fake: FakeClient,
) -> None:
    fake.partitions = 4
    with Producer(
        fake, enable_idempotence=False, linger_ms=LONG_LINGER_MS, max_in_flight=1, topic="orders"
    ) as p:
        p.send(b"a", b"k1")
        fake.describe_fail = UnavailableError("an election is under way")
        p._counted_at = time.monotonic() - METADATA_MAX_AGE_S - 1  # the count is due again
        p.send(b"b", b"k1")
        fake.describe_fail = None
    assert fake.described == 2
    # Both records still named their partition: one batch, not a keyed one overtaking it.
    assert [r.partition for r in fake.requests] == [partition_for_key(b"k1", 4)]
    assert [rec.value for rec in fake.requests[0].records] == [b"a", b"b"]


def test_a_server_without_producer_ids_gets_a_warned_not_idempotent_producer(
    fake: FakeClient,
) -> None:
    with (
        pytest.warns(RuntimeWarning, match="not idempotent"),
        Producer(fake, linger_ms=LONG_LINGER_MS) as p,
    ):
        futures = [p.send(b"%d" % i) for i in range(10)]
        p.flush()
    assert not p.idempotent
    assert [f.result() for f in futures] == list(range(10))
    assert all(r.producer_id == 0 for r in fake.requests)


def test_an_idempotent_producer_refuses_more_than_5_batches_in_flight(fake: FakeClient) -> None:
    with pytest.raises(InvalidArgumentError, match="at most 5"):
        Producer(fake, max_in_flight=6)
    Producer(fake, max_in_flight=6, enable_idempotence=False).close()


def test_acks_must_be_all_or_leader(fake: FakeClient) -> None:
    with pytest.raises(InvalidArgumentError, match="acks"):
        Producer(fake, acks="some")  # type: ignore[arg-type]
    with Producer(fake, acks="leader", enable_idempotence=False) as p:
        p.send(b"v")
    assert fake.requests[0].acks == ACKS_LEADER
