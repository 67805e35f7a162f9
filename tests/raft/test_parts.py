"""Unit tests of the pieces under the core: quorum maths, progress, storage, log, membership."""

from __future__ import annotations

import random
from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replog.raft import (
    CONTINUES,
    CompactedError,
    ConfChange,
    ConfChangeError,
    ConfChangeOp,
    Entry,
    EntryKind,
    Membership,
    MemoryRaftStorage,
    Raft,
    RaftConfig,
    SnapshotMeta,
)
from replog.raft.membership import ConfigTracker, apply_change
from replog.raft.progress import Inflights, Progress, ProgressState
from replog.raft.quorum import VoteResult, committed_index, vote_result
from replog.raft.state.log import RaftLog
from replog.raft.storage import ENTRY_OVERHEAD_BYTES


def _naive_committed(voters: list[int], match: dict[int, int]) -> int:
    # The largest N such that a strict majority of voters has match >= N.
    best = 0
    for n in set(match.values()) | {0}:
        if sum(1 for v in voters if match.get(v, 0) >= n) * 2 > len(voters):
            best = max(best, n)
    return best


@given(st.dictionaries(st.integers(1, 9), st.integers(0, 50), min_size=1, max_size=9))
def test_committed_index_agrees_with_the_naive_definition(match: dict[int, int]) -> None:
    voters = sorted(match)
    assert committed_index(voters, match) == _naive_committed(voters, match)


@given(st.integers(1, 7), st.dictionaries(st.integers(1, 7), st.booleans()))
def test_vote_result_agrees_with_counting_every_completion(
    size: int, votes: dict[int, bool]
) -> None:
    voters = list(range(1, size + 1))
    votes = {k: v for k, v in votes.items() if k <= size}
    missing = [v for v in voters if v not in votes]
    outcomes = set()
    for k in range(len(missing) + 1):
        for yes in combinations(missing, k):
            granted = sum(1 for v in voters if votes.get(v) or v in yes)
            outcomes.add(granted * 2 > size)
    expected = (
        VoteResult.PENDING
        if len(outcomes) == 2
        else (VoteResult.WON if True in outcomes else VoteResult.LOST)
    )
    assert vote_result(voters, votes) is expected


def test_inflights_are_bounded_and_freed_in_order() -> None:
    inflights = Inflights(3)
    for last in (5, 9, 12):
        inflights.add(last)
    assert inflights.full()
    inflights.free_le(9)
    assert len(inflights) == 1 and not inflights.full()
    inflights.free_first_one()
    assert len(inflights) == 0


def test_progress_pipelines_in_replicate_and_pauses_in_probe() -> None:
    pr = Progress(next_index=5, max_inflight_msgs=2)
    assert pr.state is ProgressState.PROBE and not pr.is_paused()
    pr.sent_entries(7, 3)
    assert pr.is_paused()
    assert pr.maybe_update(7) and not pr.is_paused()
    pr.become_replicate()
    pr.sent_entries(9, 2)
    pr.sent_entries(11, 2)
    assert pr.next == 12 and pr.is_paused()
    assert pr.maybe_decr_to(rejected=9, match_hint=8)
    assert pr.next == 8


def test_a_stale_rejection_in_probe_state_is_ignored() -> None:
    pr = Progress(next_index=10, max_inflight_msgs=4)
    assert not pr.maybe_decr_to(rejected=5, match_hint=1)
    assert pr.maybe_decr_to(rejected=9, match_hint=3)
    assert pr.next == 4


def _entries(terms: list[int], first: int = 1, size: int = 0) -> list[Entry]:
    return [Entry(t, i, EntryKind.DATA, b"x" * size) for i, t in enumerate(terms, first)]


def test_memory_storage_appends_truncates_and_compacts() -> None:
    s = MemoryRaftStorage()
    s.append(_entries([1, 1, 2, 2]))
    s.append(_entries([3], first=3))
    assert [s.term(i) for i in range(0, 5)] == [0, 1, 1, 3, None]
    s.compact(3)
    assert (s.first_index(), s.last_index(), s.term(2), s.term(1)) == (3, 3, 1, None)
    with pytest.raises(CompactedError):
        s.entries(2, 4, 1 << 20)
    s.apply_snapshot(SnapshotMeta(10, 4, Membership()))
    assert (s.first_index(), s.last_index(), s.term(10)) == (11, 10, 4)


def test_entries_are_limited_by_bytes_but_at_least_one_is_returned() -> None:
    s = MemoryRaftStorage()
    s.append(_entries([1] * 10, size=100))
    per_entry = 100 + ENTRY_OVERHEAD_BYTES
    assert len(s.entries(1, 11, 3 * per_entry)) == 3
    assert len(s.entries(1, 11, 1)) == 1
    assert len(s.entries(1, 11, 1 << 20)) == 10


def test_the_log_reads_through_the_unstable_tail_to_storage() -> None:
    s = MemoryRaftStorage()
    s.append(_entries([1, 1, 2]))
    log = RaftLog(s, committed=0, applied=0)
    log.append(_entries([3, 3], first=3))
    assert [log.term(i) for i in range(1, 6)] == [1, 1, 3, 3, None]
    assert [e.term for e in log.entries(1, 10)] == [1, 1, 3, 3]
    log.stable_to(4, 3)
    assert log.unstable.entries == [] and log.unstable.offset == 5


def test_find_conflict_by_term_skips_a_whole_term() -> None:
    s = MemoryRaftStorage()
    s.append(_entries([1, 1, 2, 2, 2, 5, 5]))
    log = RaftLog(s, committed=0, applied=0)
    assert log.find_conflict_by_term(7, 4) == 5
    assert log.find_conflict_by_term(7, 1) == 2
    assert log.find_conflict_by_term(7, 9) == 7


def test_config_entries_carry_the_whole_configuration() -> None:
    config = Membership(frozenset({1, 2, 3}))
    change = ConfChange(ConfChangeOp.ADD_LEARNER, 4)
    result = apply_change(config, change)
    assert ConfChange.decode(change.encode(result)) == (change, result)
    with pytest.raises(ConfChangeError):
        apply_change(result, ConfChange(ConfChangeOp.PROMOTE, 5))
    with pytest.raises(ConfChangeError):
        apply_change(Membership(frozenset({1})), ConfChange(ConfChangeOp.REMOVE, 1))


def test_the_config_tracker_reverts_a_truncated_config_entry() -> None:
    # Dissertation §4.1: a server uses the latest configuration in its log, committed or not.
    base = Membership(frozenset({1, 2, 3}))
    grown = apply_change(base, ConfChange(ConfChangeOp.ADD_LEARNER, 4))
    tracker = ConfigTracker(base)
    entry = Entry(2, 5, EntryKind.CONFIG, ConfChange(ConfChangeOp.ADD_LEARNER, 4).encode(grown))
    assert tracker.observe_append([entry])
    assert tracker.latest == grown and tracker.committed == base
    assert tracker.observe_append(_entries([3], first=5))
    assert tracker.latest == base
    tracker.observe_append([entry])
    tracker.commit_to(5)
    assert tracker.committed == grown and tracker.pending == []


def test_a_restarted_node_recovers_uncommitted_config_entries_from_its_log() -> None:
    base = Membership(frozenset({1, 2, 3}))
    grown = apply_change(base, ConfChange(ConfChangeOp.ADD_LEARNER, 4))
    s = MemoryRaftStorage(base)
    payload = ConfChange(ConfChangeOp.ADD_LEARNER, 4).encode(grown)
    s.append([Entry(1, 1, EntryKind.NOOP, b""), Entry(1, 2, EntryKind.CONFIG, payload)])
    r = Raft(RaftConfig(node_id=1), s, random.Random(0))
    assert r.config == grown and r.confs.committed == base


def test_the_core_keeps_running_between_ready_and_advance() -> None:
    # The driver may step messages while a Ready is being persisted; their output comes in the
    # next Ready, and entries already handed out are not handed out twice.
    from tests.raft.env import Env

    env = Env()
    env.add_nodes([1, 2, 3], pre_vote=False)
    env.elect(1)
    r = env.nodes[1]
    r.propose([b"a"])
    first = r.ready()
    assert not r.has_ready()
    r.propose([b"b"])
    env.stores[1].append(first.entries)
    r.advance(first)
    second = r.ready()
    assert [e.data for e in first.entries] == [b"a"]
    assert [e.data for e in second.entries] == [b"b"]
    r.advance(second)


def test_a_failed_snapshot_report_makes_the_leader_probe_again() -> None:
    from replog.raft.progress import ProgressState
    from tests.raft.env import Env

    env = Env()
    env.add_nodes([1, 2, 3], pre_vote=False)
    env.elect(1)
    env.isolate(3)
    env.nodes[1].propose([b"a", b"b"])
    env.stabilize()
    env.stores[1].compact(3)
    env.heal()
    env.dropped_types = {"SNAPSHOT"}
    env.nodes[1].tick()
    env.stabilize()
    assert env.nodes[1].progress[3].state is ProgressState.SNAPSHOT
    env.nodes[1].report_snapshot(3, ok=False)
    assert env.nodes[1].progress[3].state is ProgressState.PROBE
    env.dropped_types = set()
    env.nodes[1].tick()
    env.stabilize()
    assert env.nodes[1].progress[3].state is ProgressState.REPLICATE
    assert env.nodes[3].log.committed == env.nodes[1].log.committed == 3
    assert env.stores[3].first_index() == 4


def test_application_kinds_replicate_like_data_and_core_kinds_are_refused() -> None:
    from tests.raft.env import Env

    env = Env()
    env.add_nodes([1, 2, 3], pre_vote=False)
    env.elect(1)
    r = env.nodes[1]
    for reserved in (EntryKind.NOOP, EntryKind.CONFIG, -1, CONTINUES, 3 | CONTINUES):
        with pytest.raises(ValueError, match="reserved"):
            r.propose([b"x"], reserved)
    first, last = r.propose([b'{"id": "n4"}', b"more"], 3)
    env.stabilize()
    for node_id in (1, 2, 3):
        stored = env.stores[node_id].entries(first, last + 1, 1 << 20)
        # One proposal, one atomic batch: every entry but the last is flagged CONTINUES.
        assert [(e.kind, e.data) for e in stored] == [
            (3 | CONTINUES, b'{"id": "n4"}'),
            (3, b"more"),
        ]
        assert env.nodes[node_id].log.committed >= last


def _cut_tail(env: object, node_id: int, keep: int, *, flag: bool) -> None:
    """Restart ``node_id`` with its stored log cut after ``keep`` (media damage), the
    driver telling the core so (``log_lost``) when ``flag``."""
    store = env.stores[node_id]  # type: ignore[attr-defined]
    del store._entries[keep - store.first_index() + 1 :]
    env.restart(node_id)  # type: ignore[attr-defined]
    env.nodes[node_id].log_lost = flag  # type: ignore[attr-defined]


@pytest.mark.parametrize("flag", [True, False])
def test_a_follower_whose_recovery_cut_acknowledged_entries_is_repaired_by_the_leader(
    flag: bool,
) -> None:
    # Issue 11 defect 7: the leader's match for the follower lies past the follower's new
    # end, so its rejections looked stale and the leader probed past the end forever.
    from tests.raft.env import Env

    env = Env()
    env.add_nodes([1, 2, 3], pre_vote=False)
    env.elect(1)
    leader = env.nodes[1]
    for i in range(5):
        leader.propose([b"e%d" % i])
    env.stabilize()
    last = leader.log.last_index()
    assert leader.progress[2].match == last
    _cut_tail(env, 2, last - 3, flag=flag)
    for _ in range(5):
        env.tick(1)
        env.stabilize()
    repaired = env.nodes[2].log.last_index() == last
    assert repaired == flag  # only a follower that says it lost entries can be told again
    if flag:
        assert leader.progress[2].match == last
        assert not env.nodes[2].log_lost
