"""The clients' partition routes: merging descriptions, failures and hints, fetch pacing."""

from __future__ import annotations

from replog.client.admin import PartitionDescription, TopicDescription
from replog.client.routes import (
    AVOID_S,
    RETRY_S,
    PartitionRoutes,
    Route,
    merge_descriptions,
    merge_routes,
    needs_more,
)

ADDRS = {"a": "h:1", "b": "h:2", "c": "h:3"}


def _topic(*parts: tuple[str, tuple[str, ...]]) -> TopicDescription:
    return TopicDescription(
        "t",
        {},
        2,
        tuple(
            PartitionDescription(p, lead, reps, reps, 0, 0, 0)
            for p, (lead, reps) in enumerate(parts)
        ),
    )


def test_merged_routes_take_each_leader_from_a_node_that_knows_it() -> None:
    from_a = _topic(("a", ("a", "b")), ("", ("b", "c")))  # a holds no replica of 1
    assert needs_more(merge_routes([("a", from_a)], ADDRS))
    from_b = _topic(("c", ("a", "b")), ("b", ("b", "c")))  # b's stale view of partition 0
    routes = merge_routes([("a", from_a), ("b", from_b)], ADDRS)
    assert routes[0].leader == "h:1"  # a says it leads 0: its own word wins over b's
    assert routes[1].leader == "h:2" and routes[1].replicas == ("h:2", "h:3")
    assert not needs_more(routes)


def test_a_replica_without_a_known_address_is_left_out() -> None:
    routes = merge_routes([("a", _topic(("x", ("a", "x"))))], ADDRS)
    assert routes == [Route("", ("h:1",))]


def test_reads_go_to_the_replicas_in_turn_and_a_hint_comes_first() -> None:
    routes = PartitionRoutes()
    routes.update("t", [Route("h:1", ("h:1", "h:2"))], now=0.0)
    assert {routes.replica("t", 0) for _ in range(4)} == {"h:1", "h:2"}
    routes.failed("t", 0, "h:3")
    assert routes.replica("t", 0) == "h:3" and routes.leader("t", 0) == "h:3"
    assert routes.partitions("t") == 1 and routes.replica("t", 1) is None


def test_a_failure_without_a_hint_forgets_the_topic_and_fetches_are_paced() -> None:
    routes = PartitionRoutes(ttl_s=30.0)
    assert routes.due("t", 0.0)
    assert not routes.due("t", RETRY_S / 2)  # just tried
    routes.update("t", [Route("h:1", ("h:1",))], now=1.0)
    assert not routes.due("t", 2.0)  # fresh
    routes.failed("t", 0)
    assert routes.leader("t", 0) is None and routes.due("t", 2.0)
    assert routes.due("t", 40.0)


def test_a_topic_that_may_not_be_described_is_not_asked_again_for_a_while() -> None:
    routes = PartitionRoutes(ttl_s=30.0)
    assert routes.due("t", 0.0)
    routes.update("t", [], now=0.0, hold=True)
    assert not routes.due("t", 10.0) and routes.due("t", 31.0)
    assert not PartitionRoutes.routed("") and not PartitionRoutes.routed("default")


def test_merged_descriptions_take_each_partition_from_its_leader_then_a_replica() -> None:
    def part(p: int, leader: str, next_offset: int) -> PartitionDescription:
        return PartitionDescription(p, leader, ("a", "b"), ("a", "b"), 0, next_offset, 0)

    from_a = TopicDescription("t", {}, 2, (part(0, "a", 9), part(1, "", 0)))
    from_c = TopicDescription("t", {}, 2, (part(0, "", 0), part(1, "", 0)))  # no replica
    from_b = TopicDescription("t", {}, 2, (part(0, "a", 7), part(1, "b", 5)))
    merged = merge_descriptions([("c", from_c), ("a", from_a), ("b", from_b)])
    assert [p.next_offset for p in merged.partitions] == [9, 5]
    assert [p.leader for p in merged.partitions] == ["a", "b"]


def test_an_address_that_failed_without_a_hint_is_avoided_for_that_partition_a_while() -> None:
    routes = PartitionRoutes()
    table = [Route("h:1", ("h:1", "h:2")), Route("h:1", ("h:1",))]
    routes.update("t", table, now=0.0)
    routes.failed("t", 0, addr="h:1", now=10.0)  # e.g. a cut-off leader timing out
    routes.update("t", [Route("h:1", ("h:1", "h:2")), Route("h:1", ("h:1",))], now=10.5)
    assert routes.leader("t", 0, now=11.0) is None  # the caller falls back to any node
    assert routes.replica("t", 0, now=11.0) == "h:2"
    assert routes.leader("t", 1, now=11.0) == "h:1"  # other partitions are not affected
    assert routes.leader("t", 0, now=10.0 + AVOID_S + 0.1) == "h:1"
