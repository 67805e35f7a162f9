"""``replog.Consumer`` and ``AsyncConsumer`` against a real single-node server: partitions
are shared out and move on a close or a crash, every record is processed at least once
with no gap, commits, seek, pause/resume and auto_offset_reset behave as documented, and a
fenced zombie's commit is refused."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import replog
from replog.client import Client, Consumer, ConsumerRecord
from replog.errors import InvalidArgumentError, PreconditionFailedError
from tests.integration.conftest import ThreadedServer, wait_until

TOPIC = "orders"


@pytest.fixture
def client(server: ThreadedServer) -> Iterator[Client]:
    with Client(server.grpc_address) as made:
        yield made


class Member:
    """A consumer processing records on a thread of its own, noting each one."""

    def __init__(self, client: Client, group: str, **options: Any) -> None:
        self.consumer = Consumer(client, group, [TOPIC], **options)
        self.seen: list[ConsumerRecord] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop_polling(self) -> None:
        self.running = False
        self.thread.join(10)

    def _run(self) -> None:
        while self.running:
            record = self.consumer.poll(0.1)
            if record is not None:
                self.seen.append(record)

    def stop(self, *, crash: bool = False) -> None:
        self.stop_polling()
        if crash:
            self.consumer._halt()  # stops heartbeats and fetches, without committing or leaving
        else:
            self.consumer.close()


@pytest.fixture
def members(client: Client) -> Iterator[list[Member]]:
    made: list[Member] = []
    yield made
    for member in made:
        if member.running:
            member.stop()


def _produce(client: Client, count: int, partitions: int, start: int = 0) -> None:
    for i in range(start, start + count):
        client.produce(b"%d" % i, topic=TOPIC, partition=i % partitions)


def _values(members: list[Member]) -> set[int]:
    return {int(r.value) for m in members for r in m.seen}


def test_three_consumers_on_twelve_partitions_get_four_each_and_a_closed_ones_move_within_1s(
    client: Client, members: list[Member]
) -> None:
    client.create_topic(TOPIC, 12)
    members.extend(Member(client, "billing") for _ in range(3))

    def shares() -> list[frozenset[tuple[str, int]]]:
        return [m.consumer.assignment() for m in members]

    wait_until(lambda: [len(s) for s in shares()] == [4, 4, 4], 20, "4 partitions each")
    held = shares()
    assert frozenset().union(*held) == {(TOPIC, p) for p in range(12)}

    members[0].stop_polling()
    started = time.monotonic()
    members[0].consumer.close()
    rest = members[1:]
    wait_until(
        lambda: (
            frozenset().union(*(m.consumer.assignment() for m in rest))
            == {(TOPIC, p) for p in range(12)}
        ),
        5,
        "the closed member's partitions moved",
    )
    assert time.monotonic() - started < 1.0
    assert all(
        not (a & b) for a, b in [(rest[0].consumer.assignment(), rest[1].consumer.assignment())]
    )


def test_every_record_is_processed_at_least_once_with_no_gap_across_a_consumer_crash(
    client: Client, members: list[Member]
) -> None:
    client.create_topic(TOPIC, 6)
    options = {
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 2000,
        "auto_commit_interval_ms": 200,
    }
    members.extend(Member(client, "billing", **options) for _ in range(2))
    wait_until(lambda: all(len(m.consumer.assignment()) == 3 for m in members), 20, "shared")
    _produce(client, 300, 6)
    wait_until(lambda: len(_values(members)) >= 150, 20, "half processed")
    members[0].stop(crash=True)
    crashed_at = time.monotonic()
    _produce(client, 300, 6, start=300)
    wait_until(lambda: len(members[1].consumer.assignment()) == 6, 20, "crashed member's share")
    assert time.monotonic() - crashed_at < 2.0 + 1.0  # session_timeout_ms + 1 s
    wait_until(lambda: _values(members) == set(range(600)), 30, "every record processed")
    # per partition, the survivor's records are in offset order with no gap from where it began
    by_partition: dict[int, list[int]] = {}
    for record in members[1].seen:
        by_partition.setdefault(record.partition, []).append(record.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))


def test_a_fenced_zombies_commit_is_refused(client: Client, members: list[Member]) -> None:
    client.create_topic(TOPIC, 2)
    _produce(client, 10, 2)
    zombie = Consumer(
        client, "billing", [TOPIC], auto_offset_reset="earliest", session_timeout_ms=1000
    )
    try:
        got = [zombie.poll(10) for _ in range(5)]
        assert all(r is not None for r in got)
        zombie._halt()  # a pause long past its session
        wait_until(lambda: not client.describe_group("billing").members, 10, "session expired")
        members.append(Member(client, "billing", auto_offset_reset="earliest"))
        wait_until(lambda: len(members[0].consumer.assignment()) == 2, 10, "taken over")
        with pytest.raises(PreconditionFailedError) as refused:
            zombie.commit()
        assert refused.value.code in ("FENCED_MEMBER_EPOCH", "UNKNOWN_MEMBER_ID")
    finally:
        zombie._closed = True  # its session is gone; nothing to leave


def test_commit_close_and_a_restart_resume_after_the_last_record_given(client: Client) -> None:
    client.create_topic(TOPIC, 1)
    _produce(client, 10, 1)
    with Consumer(
        client, "g", [TOPIC], auto_offset_reset="earliest", enable_auto_commit=False
    ) as consumer:
        got = [consumer.poll(10) for _ in range(4)]
        assert [r.offset for r in got if r] == [0, 1, 2, 3]
        assert consumer.commit() == {(TOPIC, 0): 4}
        assert consumer.commit() == {}
    assert client.fetch_offsets("g") == {(TOPIC, 0): 4}
    with Consumer(client, "g", [TOPIC]) as again:  # auto-commit on: close commits
        record = again.poll(10)
        assert record is not None and record.offset == 4
    assert client.fetch_offsets("g") == {(TOPIC, 0): 5}


def test_latest_starts_at_the_end_and_earliest_at_the_start(client: Client) -> None:
    client.create_topic(TOPIC, 1)
    _produce(client, 5, 1)
    with Consumer(client, "late", [TOPIC]) as late:
        wait_until(lambda: late.position(TOPIC, 0) == 5, 10, "assigned at the end")
        assert late.poll(0.3) is None
        _produce(client, 1, 1, start=5)
        record = late.poll(10)
        assert record is not None and (record.offset, record.value) == (5, b"5")
    with Consumer(client, "early", [TOPIC], auto_offset_reset="earliest") as early:
        record = early.poll(10)
        assert record is not None and record.offset == 0


def test_seek_rereads_and_pause_stops_a_partition_until_resumed(client: Client) -> None:
    client.create_topic(TOPIC, 2)
    _produce(client, 20, 2)
    with Consumer(client, "g", [TOPIC], auto_offset_reset="earliest") as consumer:
        wait_until(lambda: len(consumer.assignment()) == 2, 10, "assigned")
        consumer.pause([(TOPIC, 1)])
        got = [consumer.poll(5) for _ in range(10)]
        assert {r.partition for r in got if r} == {0}
        assert consumer.poll(0.3) is None  # partition 1 paused, partition 0 read out
        consumer.seek(TOPIC, 0, 3)
        record = consumer.poll(5)
        assert record is not None and (record.partition, record.offset) == (0, 3)
        consumer.resume([(TOPIC, 1)])
        rest = [consumer.poll(5) for _ in range(17)]
        assert {r.partition for r in rest if r} == {0, 1}
        with pytest.raises(InvalidArgumentError):
            consumer.seek(TOPIC, 9, 0)


def test_a_seek_pause_or_close_ends_the_old_partition_stream_at_once(client: Client) -> None:
    """Fetches are server streams that tail a quiet partition forever: the consumer must
    cancel a stale one (seek, pause, revoke, close) rather than wait for a record."""
    client.create_topic(TOPIC, 1)
    consumer = Consumer(client, "quiet", [TOPIC], auto_offset_reset="earliest")

    def fetchers() -> int:
        return sum(t.is_alive() for t in consumer._fetchers)

    try:
        wait_until(lambda: len(consumer.assignment()) == 1, 10, "assigned")
        wait_until(lambda: len(consumer._streams) == 1, 5, "streaming")
        for _ in range(3):
            consumer.seek(TOPIC, 0, 0)
        wait_until(lambda: fetchers() == 1, 1.0, "the stale fetchers to end")
        consumer.pause([(TOPIC, 0)])
        wait_until(lambda: fetchers() == 0, 1.0, "the paused fetcher to end")
        consumer.resume([(TOPIC, 0)])
        wait_until(lambda: len(consumer._streams) == 1, 5, "streaming again")
        client.produce(b"late", topic=TOPIC, partition=0)
        record = consumer.poll(5)
        assert record is not None and record.value == b"late"
    finally:
        started = time.monotonic()
        consumer.close()
    assert fetchers() == 0 and time.monotonic() - started < 1.0


def test_the_async_consumer_reads_commits_and_leaves(server: ThreadedServer) -> None:
    async def run() -> tuple[list[int], dict[tuple[str, int], int], int]:
        async with replog.AsyncClient(server.grpc_address) as client:
            await client.create_topic(TOPIC, 3)
            for i in range(30):
                await client.produce(b"%d" % i, topic=TOPIC, partition=i % 3)
            async with replog.AsyncConsumer(
                client, "g", [TOPIC], auto_offset_reset="earliest"
            ) as consumer:
                values = []
                async for record in consumer:
                    values.append(int(record.value))
                    if len(values) == 30:
                        break
            members = len((await client.describe_group("g")).members)
            return sorted(values), await client.fetch_offsets("g"), members

    values, committed, members = asyncio.run(run())
    assert values == list(range(30))
    assert committed == {(TOPIC, p): 10 for p in range(3)}
    assert members == 0


def test_a_heartbeat_the_server_refuses_is_raised_to_the_caller_of_poll(client: Client) -> None:
    client.create_topic(TOPIC, 1)
    consumer = Consumer(client, "g", [TOPIC], assignor="no-such-assignor")
    try:
        with pytest.raises(InvalidArgumentError):
            consumer.poll(10)
    finally:
        consumer.close()


def test_two_async_consumers_share_the_partitions_and_one_takes_all_when_the_other_leaves(
    server: ThreadedServer,
) -> None:
    async def shares_then_after_leave() -> tuple[list[int], int]:
        async with replog.AsyncClient(server.grpc_address) as client:
            await client.create_topic(TOPIC, 4)
            one = replog.AsyncConsumer(client, "g", [TOPIC])
            two = replog.AsyncConsumer(client, "g", [TOPIC])
            await one.start()
            await two.start()
            deadline = time.monotonic() + 20
            while [len(one.assignment()), len(two.assignment())] != [2, 2]:
                assert time.monotonic() < deadline, "the partitions were not shared"
                await asyncio.sleep(0.02)
            shared = [len(one.assignment()), len(two.assignment())]
            await one.close()
            while len(two.assignment()) != 4:
                assert time.monotonic() < deadline, "the leaver's partitions did not move"
                await asyncio.sleep(0.02)
            await two.close()
            return shared, len((await client.describe_group("g")).members)

    shared, members = asyncio.run(shares_then_after_leave())
    assert shared == [2, 2]
    assert members == 0


def test_poll_batch_gives_a_partitions_records_together_and_commits_after_the_caller_moves_on(
    client: Client,
) -> None:
    client.create_topic(TOPIC, 1)
    client.produce_batch([b"%d" % i for i in range(50)], topic=TOPIC, partition=0)
    with Consumer(
        client, "b", [TOPIC], auto_offset_reset="earliest", enable_auto_commit=False
    ) as consumer:
        first = consumer.poll_batch(10)
        assert first is not None and (first.topic, first.partition) == (TOPIC, 0)
        assert [r.offset for r in first.records] == list(range(50))
        assert first.records[7].value == b"7" and first.records[7].topic == TOPIC
        # The batch is in hand: a background commit (what auto-commit and a revocation
        # send) leaves it out; an explicit commit counts it.
        assert consumer.state.to_commit(in_hand=False) == {(TOPIC, 0): 0}  # its start
        assert consumer.commit() == {(TOPIC, 0): 50}
        assert consumer.poll_batch(0.2) is None
    assert client.fetch_offsets("b") == {(TOPIC, 0): 50}


def test_the_async_consumer_gives_batches_too(server: ThreadedServer) -> None:
    async def run() -> list[int]:
        async with replog.AsyncClient(server.grpc_address) as client:
            await client.create_topic(TOPIC, 2)
            for p in range(2):
                await client.produce_batch([b"x"] * 5, topic=TOPIC, partition=p)
            async with replog.AsyncConsumer(
                client, "ab", [TOPIC], auto_offset_reset="earliest"
            ) as consumer:
                sizes = []
                while sum(sizes) < 10:
                    batch = await consumer.poll_batch(10)
                    assert batch is not None
                    sizes.append(len(batch.records))
                return sizes

    assert sorted(asyncio.run(run())) == [5, 5]


def test_the_async_consumer_cancels_a_stale_partition_stream_at_once(
    server: ThreadedServer,
) -> None:
    async def run() -> None:
        async with replog.AsyncClient(server.grpc_address) as client:
            await client.create_topic(TOPIC, 1)
            consumer = replog.AsyncConsumer(client, "quiet", [TOPIC], auto_offset_reset="earliest")
            async with consumer:
                await _until(lambda: len(consumer._fetches) == 1, 2.0, "a fetch")
                for _ in range(3):
                    await consumer.seek(TOPIC, 0, 0)
                # the stale streams are cancelled at once: one fetch left, well within 1 s
                await _until(lambda: len(consumer._fetches) == 1, 1.0, "the stale fetches' end")
                await consumer.pause([(TOPIC, 0)])
                await _until(lambda: not consumer._fetches, 1.0, "the paused fetch's end")
                await consumer.resume([(TOPIC, 0)])
                await client.produce(b"late", topic=TOPIC, partition=0)
                record = await asyncio.wait_for(consumer.poll(5), 6)
                assert record is not None and record.value == b"late"

    asyncio.run(asyncio.wait_for(run(), 20))


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` on the loop until true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)
