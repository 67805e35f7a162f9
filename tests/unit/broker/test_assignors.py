"""Consumer group assignors: range and cooperative-sticky targets, scenarios and properties."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replog.broker.assignors import (
    ASSIGNORS,
    CooperativeStickyAssignor,
    MemberSubscription,
    RangeAssignor,
    TopicPartition,
    assignor,
)
from replog.errors import InvalidArgumentError

Assignment = dict[str, frozenset[TopicPartition]]
STICKY = CooperativeStickyAssignor()
RANGE = RangeAssignor()


def _tps(text: str) -> frozenset[TopicPartition]:
    """ "x/0 x/3" -> {x-0, x-3}; "x/0-2" -> x-0, x-1, x-2."""
    out = set()
    for word in text.split():
        topic, numbers = word.split("/")
        low, _, high = numbers.partition("-")
        out.update(TopicPartition(topic, p) for p in range(int(low), int(high or low) + 1))
    return frozenset(out)


def _m(member_id: str, topics: str, owned: str = "") -> MemberSubscription:
    return MemberSubscription(member_id, frozenset(topics.split()), _tps(owned))


# (sentence, assignor, members, partitions, expected: member -> partitions)
SCENARIOS = [
    (
        "range gives 3 members of 12 partitions 4 contiguous partitions each",
        RANGE,
        [_m("c", "t"), _m("a", "t"), _m("b", "t")],
        {"t": 12},
        {"a": "t/0-3", "b": "t/4-7", "c": "t/8-11"},
    ),
    (
        "range gives the first members by id one more when the count does not divide",
        RANGE,
        [_m("a", "t"), _m("b", "t"), _m("c", "t")],
        {"t": 7},
        {"a": "t/0-2", "b": "t/3-4", "c": "t/5-6"},
    ),
    (
        "range splits each topic among its own subscribers only",
        RANGE,
        [_m("a", "x y"), _m("b", "x"), _m("c", "y")],
        {"x": 3, "y": 4},
        {"a": "x/0-1 y/0-1", "b": "x/2", "c": "y/2-3"},
    ),
    (
        "range ignores what members own",
        RANGE,
        [_m("a", "t", "t/3"), _m("b", "t", "t/0")],
        {"t": 4},
        {"a": "t/0-1", "b": "t/2-3"},
    ),
    (
        "cooperative-sticky gives 3 new members of 12 partitions 4 each",
        STICKY,
        [_m("a", "t"), _m("b", "t"), _m("c", "t")],
        {"t": 12},
        {"a": "t/0 t/3 t/6 t/9", "b": "t/1 t/4 t/7 t/10", "c": "t/2 t/5 t/8 t/11"},
    ),
    (
        "cooperative-sticky moves only the partitions of a member that left",
        STICKY,
        [_m("a", "t", "t/0 t/3 t/6 t/9"), _m("b", "t", "t/1 t/4 t/7 t/10")],
        {"t": 12},
        {"a": "t/0 t/2-3 t/6 t/8-9", "b": "t/1 t/4-5 t/7 t/10-11"},
    ),
    (
        "cooperative-sticky gives a joining member one partition from each of the others",
        STICKY,
        [
            _m("a", "t", "t/0 t/3 t/6 t/9"),
            _m("b", "t", "t/1 t/4 t/7 t/10"),
            _m("c", "t", "t/2 t/5 t/8 t/11"),
            _m("d", "t"),
        ],
        {"t": 12},
        {"a": "t/0 t/3 t/6", "b": "t/1 t/4 t/7", "c": "t/2 t/5 t/8", "d": "t/9-11"},
    ),
    (
        "cooperative-sticky balances members whose subscriptions differ",
        STICKY,
        [_m("a", "x"), _m("b", "x y"), _m("c", "y")],
        {"x": 4, "y": 2},
        {"a": "x/0 x/2", "b": "x/1 x/3", "c": "y/0-1"},
    ),
    (
        "cooperative-sticky moves a chain of partitions when no single move balances",
        STICKY,
        [_m("a", "x", "x/0-2"), _m("b", "x y", "y/0-1"), _m("c", "y", "y/2")],
        {"x": 3, "y": 3},
        {"a": "x/0-1", "b": "x/2 y/0", "c": "y/1-2"},
    ),
    (
        "cooperative-sticky leaves a partition two members claim with the lower member id",
        STICKY,
        [_m("b", "t", "t/0 t/2 t/3"), _m("a", "t", "t/0 t/1")],
        {"t": 4},
        {"a": "t/0-1", "b": "t/2-3"},
    ),
    (
        "cooperative-sticky drops claims on unsubscribed, missing and out-of-range partitions",
        STICKY,
        [_m("a", "t", "u/0 gone/0 t/9"), _m("b", "t u", "t/0 t/1")],
        {"t": 2, "u": 1},
        {"a": "t/1", "b": "t/0 u/0"},
    ),
]

EDGE_CASES = [
    ("an empty group gets an empty assignment", [], {"t": 3}, {}),
    (
        "a member subscribed to nothing gets nothing",
        [_m("a", ""), _m("b", "t")],
        {"t": 2},
        {"a": "", "b": "t/0-1"},
    ),
    (
        "a missing topic, a topic of 0 partitions and an unsubscribed topic assign nothing",
        [_m("a", "gone empty"), _m("b", "t")],
        {"t": 1, "empty": 0, "other": 5},
        {"a": "", "b": "t/0"},
    ),
]


@pytest.mark.parametrize(
    ("chosen", "members", "partitions", "expected"),
    [pytest.param(a, m, p, e, id=i) for i, a, m, p, e in SCENARIOS]
    + [
        pytest.param(a, m, p, e, id=f"{a.name} {i}")
        for i, m, p, e in EDGE_CASES
        for a in (RANGE, STICKY)
    ],
)
def test_scenario(
    chosen: RangeAssignor | CooperativeStickyAssignor,
    members: list[MemberSubscription],
    partitions: dict[str, int],
    expected: dict[str, str],
) -> None:
    assert chosen.assign(members, partitions) == {m: _tps(e) for m, e in expected.items()}


def test_assignors_are_found_by_name_and_an_unknown_name_lists_the_known_ones() -> None:
    assert sorted(ASSIGNORS) == ["cooperative-sticky", "range"]
    assert assignor("range").name == "range"
    assert assignor("cooperative-sticky") is ASSIGNORS["cooperative-sticky"]
    with pytest.raises(InvalidArgumentError, match="cooperative-sticky, range"):
        assignor("roundrobin")


@pytest.mark.parametrize("chosen", [RANGE, STICKY], ids=lambda a: a.name)
def test_two_members_with_one_id_or_a_negative_partition_count_are_refused(
    chosen: RangeAssignor | CooperativeStickyAssignor,
) -> None:
    with pytest.raises(InvalidArgumentError, match="'a'"):
        chosen.assign([_m("a", "t"), _m("a", "u")], {"t": 1})
    with pytest.raises(InvalidArgumentError, match="-1"):
        chosen.assign([_m("a", "t")], {"t": -1})


def test_1000_members_on_10000_partitions_are_assigned_and_rebalanced() -> None:
    """Not a timing: makes sure nothing quadratic hangs at a large group's size."""
    topics = {f"t{i}": 1000 for i in range(10)}
    members = [MemberSubscription(f"m{i:04}", frozenset(topics)) for i in range(1000)]
    first = STICKY.assign(members, topics)
    assert {len(tps) for tps in first.values()} == {10}
    everything = frozenset().union(*first.values())
    hoarder = [MemberSubscription(members[0].member_id, members[0].topics, everything)]
    hoarder += members[1:]
    assert {len(tps) for tps in STICKY.assign(hoarder, topics).values()} == {10}
    ranged = RANGE.assign(members, topics)
    assert {len(tps) for tps in ranged.values()} == {10}


# ---- properties over random groups ---------------------------------------------------------

TOPICS = ["t0", "t1", "t2", "t3", "t4"]


@st.composite
def groups(
    draw: st.DrawFn, same_subscriptions: bool = False
) -> tuple[list[MemberSubscription], dict[str, int]]:
    """1..20 members, 1..5 topics of 0..64 partitions (some subscribed ones missing), random
    subscriptions and owned sets, including conflicting and invalid claims."""
    ids = draw(
        st.lists(st.text("abcdefgh", min_size=1, max_size=3), min_size=1, max_size=20, unique=True)
    )
    topics = draw(st.lists(st.sampled_from(TOPICS), min_size=1, max_size=5, unique=True))
    counts = {t: draw(st.integers(0, 64)) for t in topics}
    existing = {t: n for t, n in counts.items() if draw(st.integers(0, 9)) > 0}
    possible = [TopicPartition(t, p) for t in topics for p in range(counts[t] + 2)]
    shared = frozenset(draw(st.lists(st.sampled_from(topics), unique=True)))
    members = []
    for member_id in ids:
        mine = (
            shared
            if same_subscriptions
            else frozenset(draw(st.lists(st.sampled_from(topics), unique=True)))
        )
        owned = frozenset(
            draw(st.lists(st.sampled_from(possible), max_size=40)) if possible else []
        )
        members.append(MemberSubscription(member_id, mine, owned))
    return members, existing


def _subscribed(
    members: Sequence[MemberSubscription], partitions: Mapping[str, int]
) -> set[TopicPartition]:
    return {
        TopicPartition(t, p) for m in members for t in m.topics for p in range(partitions.get(t, 0))
    }


def _assert_complete_and_exclusive(
    members: Sequence[MemberSubscription], partitions: Mapping[str, int], result: Assignment
) -> None:
    by_id = {m.member_id: m for m in members}
    assert set(result) == set(by_id)
    given_out = [tp for tps in result.values() for tp in tps]
    assert len(given_out) == len(set(given_out)), "a partition went to two members"
    assert set(given_out) == _subscribed(members, partitions)
    for member_id, tps in result.items():
        assert all(tp.topic in by_id[member_id].topics for tp in tps)


Move = tuple[TopicPartition, str, str]  # (partition, from, to)


def _improving_chain(
    members: Sequence[MemberSubscription],
    result: Mapping[str, frozenset[TopicPartition]],
    movable: Callable[[TopicPartition], bool] = lambda tp: True,
) -> list[Move] | None:
    """A chain of moves of ``movable`` partitions, each to a member subscribing to its
    topic, from a member loaded k to one loaded k - 2 or less; found naively, breadth
    first from every member. None means the assignment is an optimal semi-matching (of
    the movable partitions, the others fixed)."""
    load = {m: len(tps) for m, tps in result.items()}
    subscriptions = [(m.member_id, m.topics) for m in members]
    for start, start_load in load.items():
        came: dict[str, Move] = {}
        queue = deque([start])
        while queue:
            giver = queue.popleft()
            by_topic = {tp.topic: tp for tp in sorted(result[giver]) if movable(tp)}
            for receiver, topics in subscriptions:
                shared = sorted(set(by_topic) & topics)
                if receiver == start or receiver in came or not shared:
                    continue
                came[receiver] = (by_topic[shared[0]], giver, receiver)
                if load[receiver] <= start_load - 2:
                    chain = [came[receiver]]
                    while chain[-1][1] != start:
                        chain.append(came[chain[-1][1]])
                    return chain
                queue.append(receiver)
    return None


def _cost_reducing_path(members: Sequence[MemberSubscription], result: Assignment) -> str | None:
    chain = _improving_chain(members, result)
    return (
        None
        if chain is None
        else f"moves {chain} narrow the gap between {chain[-1][1]} and {chain[0][2]}"
    )


def _best_keeping(
    members: Sequence[MemberSubscription],
    partitions: Mapping[str, int],
    kept: Assignment,
    seed: int | None = None,
) -> Assignment:
    """The most balanced assignment that leaves ``kept`` where it is, built naively: the
    other subscribed partitions go greedily to the least loaded (in an order shuffled by
    ``seed``, if given), then move along improving chains of their own until none is left."""
    held = {m.member_id: set(kept.get(m.member_id, ())) for m in members}
    fixed = {tp for tps in kept.values() for tp in tps}
    free = sorted(_subscribed(members, partitions) - fixed)
    if seed is not None:
        random.Random(seed).shuffle(free)
    for tp in free:
        held[
            min((len(held[m.member_id]), m.member_id) for m in members if tp.topic in m.topics)[1]
        ].add(tp)
    while True:
        frozen = {m: frozenset(tps) for m, tps in held.items()}
        chain = _improving_chain(members, frozen, lambda tp: tp not in fixed)
        if chain is None:
            return frozen
        for tp, giver, receiver in chain:
            held[giver].remove(tp)
            held[receiver].add(tp)


def _shuffled(members: Sequence[MemberSubscription], seed: int) -> list[MemberSubscription]:
    rng = random.Random(seed)
    out = [
        MemberSubscription(
            m.member_id,
            frozenset(rng.sample(sorted(m.topics), len(m.topics))),
            frozenset(rng.sample(sorted(m.owned), len(m.owned))),
        )
        for m in members
    ]
    rng.shuffle(out)
    return out


def _with_owned(
    members: Sequence[MemberSubscription], owned: Assignment
) -> list[MemberSubscription]:
    return [
        MemberSubscription(m.member_id, m.topics, owned.get(m.member_id, frozenset()))
        for m in members
    ]


def _effective_owned(
    members: Sequence[MemberSubscription], partitions: Mapping[str, int]
) -> dict[TopicPartition, str]:
    """The claims the documented rule keeps: valid ones, the lowest member id winning."""
    kept: dict[TopicPartition, str] = {}
    for member in sorted(members, key=lambda m: m.member_id):
        for tp in member.owned:
            if tp.topic in member.topics and tp.partition < partitions.get(tp.topic, 0):
                kept.setdefault(tp, member.member_id)
    return kept


@settings(max_examples=200)
@given(groups(), st.integers())
def test_range_assigns_each_subscribed_partition_once_in_contiguous_balanced_ranges(
    group: tuple[list[MemberSubscription], dict[str, int]], seed: int
) -> None:
    members, partitions = group
    result = RANGE.assign(members, partitions)
    _assert_complete_and_exclusive(members, partitions, result)
    assert RANGE.assign(_shuffled(members, seed), partitions) == result
    for topic, count in partitions.items():
        subscribers = sorted(m.member_id for m in members if topic in m.topics)
        if not subscribers:
            continue
        mine = [sorted(tp.partition for tp in result[s] if tp.topic == topic) for s in subscribers]
        assert [p for ps in mine for p in ps] == list(range(count)), "ranges in member-id order"
        sizes = [len(ps) for ps in mine]
        assert sizes == sorted(sizes, reverse=True) and max(sizes) - min(sizes) <= 1


@settings(max_examples=200)
@given(groups(), st.integers())
def test_cooperative_sticky_assigns_each_subscribed_partition_once_as_balanced_as_possible(
    group: tuple[list[MemberSubscription], dict[str, int]], seed: int
) -> None:
    members, partitions = group
    result = STICKY.assign(members, partitions)
    _assert_complete_and_exclusive(members, partitions, result)
    assert _cost_reducing_path(members, result) is None
    assert STICKY.assign(_shuffled(members, seed), partitions) == result


@settings(max_examples=200)
@given(groups(), st.integers())
def test_cooperative_sticky_moves_nothing_when_the_owned_sets_are_already_balanced(
    group: tuple[list[MemberSubscription], dict[str, int]], seed: int
) -> None:
    members, partitions = group
    balanced = STICKY.assign(members, partitions)  # an optimal assignment, from random owned sets
    assert STICKY.assign(_shuffled(_with_owned(members, balanced), seed), partitions) == balanced
    built = _best_keeping(members, partitions, {}, seed)  # one built naively, in random order
    assert _cost_reducing_path(members, built) is None
    assert STICKY.assign(_with_owned(members, built), partitions) == built
    fresh = STICKY.assign(_with_owned(members, {}), partitions)
    assert STICKY.assign(_with_owned(members, fresh), partitions) == fresh


@settings(max_examples=200)
@given(groups(same_subscriptions=True), st.data())
def test_cooperative_sticky_moves_only_a_leaving_members_partitions_when_subscriptions_match(
    group: tuple[list[MemberSubscription], dict[str, int]], data: st.DataObject
) -> None:
    members, partitions = group
    before = STICKY.assign(members, partitions)
    leaving = data.draw(st.sampled_from(sorted(before)))
    staying = [m for m in _with_owned(members, before) if m.member_id != leaving]
    after = STICKY.assign(staying, partitions)
    for member in staying:
        assert member.owned <= after[member.member_id]
    assert _cost_reducing_path(staying, after) is None


@settings(max_examples=200)
@given(groups(), st.data())
def test_cooperative_sticky_moves_others_partitions_after_a_leave_only_when_balance_needs_it(
    group: tuple[list[MemberSubscription], dict[str, int]], data: st.DataObject
) -> None:
    """With differing subscriptions the remaining members may have to trade partitions
    (a topic only the leaver shared with one of them); they keep all they hold whenever
    some as-balanced-as-possible assignment lets them."""
    members, partitions = group
    before = STICKY.assign(_with_owned(members, {}), partitions)
    leaving = data.draw(st.sampled_from(sorted(before)))
    staying = [m for m in _with_owned(members, before) if m.member_id != leaving]
    after = STICKY.assign(staying, partitions)
    lost = sum(len(m.owned - after[m.member_id]) for m in staying)
    keeping = _best_keeping(staying, partitions, {m.member_id: m.owned for m in staying})
    keeping_is_balanced = _cost_reducing_path(staying, keeping) is None
    assert (lost == 0) == keeping_is_balanced


@settings(max_examples=300)
@given(groups(same_subscriptions=True))
def test_cooperative_sticky_takes_away_the_fewest_owned_partitions_when_subscriptions_match(
    group: tuple[list[MemberSubscription], dict[str, int]],
) -> None:
    members, partitions = group
    result = STICKY.assign(members, partitions)
    owned = _effective_owned(members, partitions)
    taken = sum(1 for tp, member_id in owned.items() if tp not in result[member_id])
    loads = {m.member_id: 0 for m in members}
    for member_id in owned.values():
        loads[member_id] += 1
    total = len(_subscribed(members, partitions))
    subscribed = [m.member_id for m in members if any(t in partitions for t in m.topics)]
    if not subscribed:
        assert taken == 0
        return
    each, extra = divmod(total, len(subscribed))
    # The best balanced target gives the extra partitions to those owning the most.
    most_first = sorted((loads[m] for m in subscribed), reverse=True)
    quotas = [each + 1] * extra + [each] * (len(subscribed) - extra)
    assert taken == sum(
        max(0, have - quota) for have, quota in zip(most_first, quotas, strict=True)
    )
