"""Kafka classic-protocol groups on a real single-node server (``GroupService.classic``):
members that join concurrently form one generation and get the leader's assignment, the
rebalance timeout runs on the server's own timer, a caller that gives up on its join does
not hold the others, generations are recorded and continue after a restart, commits are
the group's ordinary offsets, and a group speaks one protocol at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from replog.broker.assignors import TopicPartition
from replog.broker.classic_group import ErrorCode, JoinAnswer
from replog.broker.consumer_protocol import (
    decode_assignment,
    encode_assignment,
    encode_subscription,
)
from replog.errors import NonEmptyGroupError
from replog.server.classic_groups import ClassicGroups
from replog.server.group_service import GroupService
from tests.integration.conftest import ThreadedServer

GROUP = "billing"
PARTITIONS = 4
SUBSCRIPTION = (("range", encode_subscription(["orders"])),)


def _service(server: ThreadedServer) -> GroupService:
    assert server.agent is not None and server.agent.groups is not None
    return server.agent.groups


def _with_topic(server: ThreadedServer) -> GroupService:
    assert server.agent is not None and server.agent.topics is not None
    server.call(server.agent.topics.create_topic("orders", PARTITIONS, 1, {}))
    return _service(server)


async def _until(predicate: Callable[[], Any], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the group")
        await asyncio.sleep(0.01)


def _range_plan(members: Sequence[tuple[str, bytes]]) -> dict[str, bytes]:
    """What a leader's range assignor would hand out: contiguous partitions per member."""
    ids = sorted(member_id for member_id, _ in members)
    plan: dict[str, list[TopicPartition]] = {member_id: [] for member_id in ids}
    for p in range(PARTITIONS):
        plan[ids[p * len(ids) // PARTITIONS]].append(TopicPartition("orders", p))
    return {member_id: encode_assignment(tps) for member_id, tps in plan.items()}


async def _join(
    classic: ClassicGroups, member_id: str = "", rebalance_ms: int = 5_000
) -> JoinAnswer:
    return await classic.join(
        GROUP, member_id, "test", "consumer", SUBSCRIPTION, 10_000, rebalance_ms, True
    )


async def _consumer(
    classic: ClassicGroups, settled: dict[str, tuple[int, tuple[TopicPartition, ...]]]
) -> None:
    """A classic consumer's loop, as Kafka clients run it: join (v4: ask for an id first),
    sync (the leader with a plan), then heartbeat until told to rejoin."""
    member_id = ""
    while True:
        joined = await _join(classic, member_id)
        member_id = joined.member_id
        if joined.error == ErrorCode.MEMBER_ID_REQUIRED:
            continue
        assert joined.error == ErrorCode.NONE, joined
        leader = joined.leader_id == member_id
        plan = _range_plan(joined.members) if leader else {}
        synced = await classic.sync(GROUP, member_id, joined.generation, plan)
        if synced.error == ErrorCode.REBALANCE_IN_PROGRESS:
            continue
        assert synced.error == ErrorCode.NONE, synced
        settled[member_id] = (joined.generation, decode_assignment(synced.assignment) or ())
        while (await classic.heartbeat(GROUP, member_id, joined.generation)).error == 0:
            await asyncio.sleep(0.05)  # the client's heartbeat interval
        settled.pop(member_id, None)


def _run(server: ThreadedServer, scenario: Callable[[], Awaitable[Any]]) -> Any:
    return server.call(scenario())


def test_three_concurrent_consumers_settle_on_one_generation_and_commit_their_offsets(
    server: ThreadedServer,
) -> None:
    groups = _with_topic(server)
    classic = groups.classic

    async def scenario() -> tuple[dict[str, Any], Any, Any, dict[TopicPartition, int]]:
        settled: dict[str, tuple[int, tuple[TopicPartition, ...]]] = {}
        tasks = [asyncio.ensure_future(_consumer(classic, settled)) for _ in range(3)]
        await _until(lambda: len(settled) == 3 and len({g for g, _ in settled.values()}) == 1)
        snapshot = dict(settled)
        generation = next(iter(snapshot.values()))[0]
        member_id, (_, owned) = next(iter(snapshot.items()))
        offsets = {tp: (100 + tp.partition, "m") for tp in owned}
        ok = await classic.commit(GROUP, member_id, generation, offsets)
        stale = await classic.commit(GROUP, member_id, generation - 1, offsets)
        described = await groups.describe(GROUP)
        fetched = await groups.fetch(GROUP)
        assert ok == dict.fromkeys(offsets, 0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await classic.leave(GROUP, list(snapshot))
        return snapshot, described, fetched, stale

    settled, described, fetched, stale = _run(server, scenario)
    owned = [tp for _, tps in settled.values() for tp in tps]
    assert sorted(owned) == [TopicPartition("orders", p) for p in range(PARTITIONS)]
    assert set(stale.values()) == {ErrorCode.ILLEGAL_GENERATION}
    assert described.state == "stable" and described.assignor == "classic:range"
    assert {(m.member_id, m.assignment) for m in described.members} == {
        (member_id, tps) for member_id, (_, tps) in settled.items()
    }
    assert all(m.topics == ("orders",) for m in described.members)
    committed = {tp: offset for tp, (offset, _) in fetched.items()}
    assert committed and all(offset == 100 + tp.partition for tp, offset in committed.items())
    assert {(o.partition, o.committed) for o in described.offsets} >= {
        (tp.partition, offset) for tp, offset in committed.items()
    }
    after = server.call(groups.describe(GROUP))
    assert after.state == "empty" and after.members == ()


def test_a_member_that_does_not_rejoin_is_removed_when_the_rebalance_timeout_passes(
    server: ThreadedServer,
) -> None:
    classic = _with_topic(server).classic

    async def scenario() -> tuple[JoinAnswer, JoinAnswer, float]:
        first = await _join(classic, (await _join(classic)).member_id, rebalance_ms=300)
        await classic.sync(GROUP, first.member_id, first.generation, {})
        started = time.monotonic()
        second = await _join(classic, (await _join(classic)).member_id, rebalance_ms=300)
        return first, second, time.monotonic() - started

    first, second, waited_s = _run(server, scenario)
    assert second.generation == first.generation + 1
    assert second.members == ((second.member_id, SUBSCRIPTION[0][1]),)  # the first is gone
    assert waited_s >= 0.25


def test_a_join_whose_caller_gave_up_does_not_hold_the_barrier(server: ThreadedServer) -> None:
    groups = _with_topic(server)
    classic = groups.classic

    async def scenario() -> tuple[JoinAnswer, float]:
        first = await _join(classic, (await _join(classic)).member_id)
        await classic.sync(GROUP, first.member_id, first.generation, {})
        abandoned = asyncio.ensure_future(_join(classic, (await _join(classic)).member_id))
        deadline = time.monotonic() + 10
        while len((await groups.describe(GROUP)).members) < 2:  # the second is waiting
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        abandoned.cancel()
        await asyncio.gather(abandoned, return_exceptions=True)
        started = time.monotonic()
        again = await _join(classic, first.member_id)  # not waiting 5 s for the second
        return again, time.monotonic() - started

    again, waited_s = _run(server, scenario)
    assert again.error == ErrorCode.NONE and len(again.members) == 1
    assert waited_s < 2


def test_generations_are_recorded_and_a_restarted_coordinator_continues_above_them(
    server_factory: Callable[..., ThreadedServer],
) -> None:
    server = server_factory()
    classic = _with_topic(server).classic

    async def two_generations() -> int:
        first = await _join(classic, (await _join(classic)).member_id)
        await classic.sync(GROUP, first.member_id, first.generation, {})
        again = await _join(classic, first.member_id)  # the leader rejoins: a new generation
        return again.generation

    last = _run(server, two_generations)
    data_dir = server.data_dir
    server.stop()
    restarted = server_factory(data_dir)
    classic = _service(restarted).classic

    async def rejoin_fresh() -> JoinAnswer:
        return await _join(classic, (await _join(classic)).member_id)

    assert _run(restarted, rejoin_fresh).generation == last + 1


def test_a_group_in_use_by_one_protocol_refuses_the_other(server: ThreadedServer) -> None:
    groups = _with_topic(server)

    async def scenario() -> tuple[JoinAnswer, list[type[BaseException]]]:
        joined = await _join(groups.classic, (await _join(groups.classic)).member_id)
        refused: list[type[BaseException]] = []
        for attempt in (
            groups.heartbeat(GROUP, "", 0, ["orders"], None),
            groups.delete(GROUP),
            groups.commit(GROUP, "", -1, {TopicPartition("orders", 0): (1, "")}),
        ):
            with pytest.raises(NonEmptyGroupError) as caught:
                await attempt
            refused.append(caught.type)
        await groups.classic.leave(GROUP, [joined.member_id])
        await groups.heartbeat("native", "", 0, ["orders"], None)
        other = await groups.classic.join(
            "native", "", "test", "consumer", SUBSCRIPTION, 10_000, 5_000
        )
        return other, refused

    other, refused = _run(server, scenario)
    assert refused == [NonEmptyGroupError] * 3
    assert other.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL


def test_commits_are_checked_per_partition_and_a_simple_commit_lands_while_the_group_is_empty(
    server: ThreadedServer,
) -> None:
    groups = _with_topic(server)
    orders0, orders9 = TopicPartition("orders", 0), TopicPartition("orders", 9)
    missing, long = TopicPartition("nope", 0), TopicPartition("orders", 1)

    async def scenario() -> tuple[dict[TopicPartition, int], dict[TopicPartition, int], Any]:
        simple = await groups.classic.commit(
            GROUP,
            "",
            -1,
            {orders0: (7, ""), orders9: (1, ""), missing: (1, ""), long: (1, "x" * 5000)},
        )
        joined = await _join(groups.classic, (await _join(groups.classic)).member_id)
        refused = await groups.classic.commit(GROUP, "", -1, {orders0: (8, "")})
        await groups.classic.leave(GROUP, [joined.member_id])
        return simple, refused, await groups.fetch(GROUP)

    simple, refused, fetched = _run(server, scenario)
    assert simple == {
        orders0: ErrorCode.NONE,
        orders9: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        missing: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        long: ErrorCode.OFFSET_METADATA_TOO_LARGE,
    }
    assert refused == {orders0: ErrorCode.UNKNOWN_MEMBER_ID}
    assert fetched == {orders0: (7, "")}


def test_members_of_another_protocol_type_or_unreadable_bytes_are_described_without_partitions(
    server: ThreadedServer,
) -> None:
    groups = _with_topic(server)

    async def scenario() -> Any:
        first = await groups.classic.join(
            GROUP, "", "w", "connect", [("v1", b"\x01")], 10_000, 5_000
        )
        await groups.classic.sync(GROUP, first.member_id, first.generation, {first.member_id: b"x"})
        return await groups.describe(GROUP)

    described = _run(server, scenario)
    assert [(m.topics, m.assignment) for m in described.members] == [((), ())]
    assert described.assignor == "classic:v1" and described.state == "stable"


def test_the_coordinator_of_a_group_is_this_single_node_whichever_protocol_it_speaks(
    server: ThreadedServer,
) -> None:
    groups = _service(server)
    coordinator = server.call(groups.coordinator(GROUP))
    assert coordinator is not None and coordinator.is_leader
    joined = server.call(groups.classic.join(GROUP, "", "c", "consumer", SUBSCRIPTION, 10_000, 1))
    assert joined.error == ErrorCode.NONE  # the node named coordinates the classic group


def test_a_compaction_of_the_offsets_partition_keeps_the_classic_members_and_generation(
    server: ThreadedServer,
) -> None:
    groups = _with_topic(server)

    async def scenario() -> tuple[int, int, int]:
        joined = await _join(groups.classic, (await _join(groups.classic)).member_id)
        await groups.classic.sync(GROUP, joined.member_id, joined.generation, {})
        shard = await groups._shard(GROUP)
        incarnation = shard.incarnation
        await shard.compact()
        assert shard.incarnation != incarnation  # a new start record, the same coordinator
        beat = await groups.classic.heartbeat(GROUP, joined.member_id, joined.generation)
        return beat.error, shard.state.epochs[GROUP], joined.generation

    error, recorded, generation = _run(server, scenario)
    assert error == ErrorCode.NONE
    assert recorded == generation
