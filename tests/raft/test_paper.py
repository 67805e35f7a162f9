"""Unit tests for the rules of the Raft paper's Figure 2 and the scenarios of Figures 7 and 8.

Each test cites the section it checks ("In Search of an Understandable Consensus Algorithm",
extended version; "Consensus: Bridging Theory and Practice" for the dissertation).
"""

from __future__ import annotations

import pytest

from replog.raft import (
    ConfChange,
    ConfChangeOp,
    Entry,
    EntryKind,
    Message,
    MessageType,
    NotLeaderError,
    Role,
    leader,
)
from tests.raft.env import Env


def _cluster(n: int = 3, **options: int | bool) -> Env:
    env = Env()
    options.setdefault("pre_vote", False)
    env.add_nodes(range(1, n + 1), None, (), **options)
    return env


def _leader_of(env: Env) -> int:
    leaders = [i for i, r in env.nodes.items() if r.role is Role.LEADER]
    assert len(leaders) == 1
    return leaders[0]


def _terms(env: Env, node_id: int) -> list[int]:
    log = env.nodes[node_id].log
    return [e.term for e in log.entries(log.first_index(), log.last_index() + 1)]


def _msg(kind: MessageType, src: int, dst: int, term: int, **fields: object) -> Message:
    return Message(type=kind, src=src, dst=dst, term=term, **fields)  # type: ignore[arg-type]


# -- Rules for all servers ------------------------------------------------------------------


@pytest.mark.parametrize("role", ["follower", "candidate", "leader"])
def test_a_higher_term_in_any_message_makes_every_role_a_follower_of_that_term(role: str) -> None:
    # Raft §5.1, Figure 2 "Rules for All Servers": if T > currentTerm, set currentTerm = T and
    # convert to follower.
    env = _cluster()
    if role == "leader":
        env.elect(1)
    elif role == "candidate":
        env.nodes[1].campaign()
    r = env.nodes[1]
    term = r.term + 5
    r.step(_msg(MessageType.APP_RESP, 2, 1, term, index=0))
    assert (r.role, r.term, r.vote) == (Role.FOLLOWER, term, None)


def test_committed_entries_are_handed_out_in_order_once_each() -> None:
    # Raft §5.3, Figure 2: if commitIndex > lastApplied, apply log[lastApplied + 1].
    env = _cluster()
    env.elect(1)
    env.nodes[1].propose([b"a", b"b"])
    env.stabilize()
    env.nodes[1].propose([b"c"])
    env.stabilize()
    for node_id in (1, 2, 3):
        applied = env.applied[node_id]
        assert [e.index for e in applied] == [1, 2, 3, 4]
        assert [e.data for e in applied] == [b"", b"a", b"b", b"c"]


# -- Followers and candidates -------------------------------------------------------------


def test_a_follower_that_hears_nothing_for_an_election_timeout_campaigns() -> None:
    # Raft §5.2: the timeout is randomized in [election_ticks, 2 * election_ticks).
    env = _cluster()
    r = env.nodes[1]
    env.tick(1, r.cfg.election_ticks - 1)
    assert r.role is Role.FOLLOWER
    env.tick(1, r.cfg.election_ticks)
    assert (r.role, r.term, r.vote) == (Role.CANDIDATE, 1, 1)


def test_randomized_election_timeouts_come_from_the_injected_rng_and_spread() -> None:
    # Raft §5.2: randomized timeouts make split votes rare.
    env = _cluster()
    seen = set()
    r = env.nodes[1]
    for _ in range(200):
        r.become_follower(r.term + 1, None)
        seen.add(r.randomized_timeout)
    assert seen == set(range(r.cfg.election_ticks, 2 * r.cfg.election_ticks))


def test_a_candidate_votes_for_itself_and_requests_votes_from_every_voter() -> None:
    # Raft §5.2, Figure 2 "Candidates": increment currentTerm, vote for self, send RequestVote.
    env = _cluster()
    env.nodes[1].campaign()
    rd = env.process_ready(1)
    assert rd is not None and rd.hard_state is not None
    assert (rd.hard_state.term, rd.hard_state.vote) == (1, 1)
    assert sorted((m.dst, m.type) for m in rd.messages) == [
        (2, MessageType.VOTE),
        (3, MessageType.VOTE),
    ]


def test_a_candidate_with_a_majority_becomes_leader_and_appends_a_noop() -> None:
    # Raft §5.2 and §8: a new leader commits a blank no-op entry at the start of its term.
    env = _cluster()
    env.elect(1)
    assert _leader_of(env) == 1
    assert env.applied[2] == [Entry(1, 1, EntryKind.NOOP, b"")]


def test_a_candidate_that_hears_from_a_leader_of_its_term_steps_down() -> None:
    # Raft §5.2: if AppendEntries is received from the new leader, convert to follower.
    env = _cluster()
    r = env.nodes[1]
    r.campaign()
    r.step(_msg(MessageType.APP, 2, 1, r.term, index=0, log_term=0))
    assert (r.role, r.lead) == (Role.FOLLOWER, 2)


def test_a_candidate_that_loses_the_majority_returns_to_follower() -> None:
    # Raft §5.2: the election fails; a new one starts after another timeout.
    env = _cluster()
    r = env.nodes[1]
    r.campaign()
    r.step(_msg(MessageType.VOTE_RESP, 2, 1, r.term, reject=True))
    r.step(_msg(MessageType.VOTE_RESP, 3, 1, r.term, reject=True))
    assert r.role is Role.FOLLOWER


# -- RequestVote receiver ----------------------------------------------------------------


def test_a_vote_request_from_an_older_term_is_refused() -> None:
    # Raft §5.1, Figure 2 RequestVote receiver rule 1.
    env = _cluster(check_quorum=False)
    r = env.nodes[2]
    r.become_follower(5, None)
    r.step(_msg(MessageType.VOTE, 1, 2, 4, index=0, log_term=0))
    assert r.vote is None and r.msgs == []


def test_a_server_votes_for_at_most_one_candidate_per_term() -> None:
    # Raft §5.2, Figure 2 RequestVote receiver rule 2 (votedFor is null or candidateId).
    env = _cluster(check_quorum=False)
    r = env.nodes[3]
    r.step(_msg(MessageType.VOTE, 1, 3, 1, index=0, log_term=0))
    r.step(_msg(MessageType.VOTE, 2, 3, 1, index=0, log_term=0))
    r.step(_msg(MessageType.VOTE, 1, 3, 1, index=0, log_term=0))
    assert [m.reject for m in r.msgs] == [False, True, False]
    assert r.vote == 1


@pytest.mark.parametrize(
    ("cand_index", "cand_term", "granted"),
    [(3, 2, True), (2, 2, False), (9, 1, False), (1, 3, True), (4, 2, True)],
)
def test_votes_go_only_to_candidates_whose_log_is_at_least_as_up_to_date(
    cand_index: int, cand_term: int, granted: bool
) -> None:
    # Raft §5.4.1: compare the last terms; with equal last terms the longer log wins.
    env = _cluster(check_quorum=False)
    env.set_log(2, [1, 1, 2])
    r = env.nodes[2]
    r.step(_msg(MessageType.VOTE, 1, 2, 5, index=cand_index, log_term=cand_term))
    assert r.msgs[-1].reject is (not granted)


def test_a_vote_is_persisted_in_the_same_ready_that_carries_the_response() -> None:
    # Raft Figure 2 "Persistent state ... updated on stable storage before responding to RPCs".
    env = _cluster()
    env.nodes[1].campaign()
    env.process_ready(1)
    env.deliver(2)
    rd = env.process_ready(2)
    assert rd is not None and rd.hard_state is not None and rd.hard_state.vote == 1
    assert [m.type for m in rd.messages] == [MessageType.VOTE_RESP]


def test_a_vote_that_was_never_persisted_is_never_sent() -> None:
    # Raft §5.2 with crashes: a node that crashes before persisting forgets the vote, and the
    # response (held back in the same Ready) was never delivered.
    env = _cluster()
    env.nodes[1].campaign()
    env.process_ready(1)
    env.deliver(2)
    env.restart(2)  # crash before processing the Ready
    assert env.stores[2].initial_state().vote is None
    assert not env.nodes[2].has_ready()


# -- AppendEntries receiver ----------------------------------------------------------------


def test_an_append_from_an_older_term_is_answered_with_the_newer_term() -> None:
    # Raft §5.1, Figure 2 AppendEntries receiver rule 1 (reply false if term < currentTerm).
    env = _cluster()
    r = env.nodes[2]
    r.become_follower(5, None)
    r.step(_msg(MessageType.APP, 1, 2, 3, index=0, log_term=0))
    assert [(m.type, m.term) for m in r.msgs] == [(MessageType.APP_RESP, 5)]
    assert r.lead is None


def test_an_append_whose_previous_entry_does_not_match_is_rejected_with_a_hint() -> None:
    # Raft §5.3, receiver rule 2; the hint enables the dissertation's fast backtracking.
    env = _cluster()
    env.set_log(2, [1, 1, 2, 2])
    r = env.nodes[2]
    r.step(_msg(MessageType.APP, 1, 2, 3, index=4, log_term=3))
    m = r.msgs[-1]
    assert (m.reject, m.index, m.reject_hint, m.log_term) == (True, 4, 4, 2)


def test_conflicting_entries_and_all_that_follow_are_replaced() -> None:
    # Raft §5.3, receiver rules 3 and 4.
    env = _cluster()
    env.set_log(2, [1, 1, 2, 2])
    r = env.nodes[2]
    new = [Entry(3, 3, 0, b"x")]
    r.step(_msg(MessageType.APP, 1, 2, 3, index=2, log_term=1, entries=new, commit=0))
    assert _terms(env, 2) == [1, 1, 3]
    env.process_ready(2)
    assert [e.term for e in env.stores[2].entries(1, 10, 1 << 20)] == [1, 1, 3]


def test_entries_already_present_are_not_rewritten() -> None:
    # Raft §5.3, receiver rule 4 ("append any new entries not already in the log"): a delayed
    # duplicate must not truncate entries that arrived later.
    env = _cluster()
    env.set_log(2, [1, 1, 1])
    r = env.nodes[2]
    old = [Entry(1, 2, 0, b"")]
    r.step(_msg(MessageType.APP, 1, 2, 1, index=1, log_term=1, entries=old, commit=0))
    assert _terms(env, 2) == [1, 1, 1]
    assert not r.log.unstable.entries


def test_the_commit_index_follows_the_leader_up_to_the_last_new_entry() -> None:
    # Raft §5.3, receiver rule 5: commitIndex = min(leaderCommit, index of last new entry).
    env = _cluster()
    r = env.nodes[2]
    ents = [Entry(1, 1, 0, b""), Entry(1, 2, 0, b"")]
    r.step(_msg(MessageType.APP, 1, 2, 1, index=0, log_term=0, entries=ents, commit=9))
    assert r.log.committed == 2


# -- Leaders -----------------------------------------------------------------------------


def test_a_leader_sends_heartbeats_every_heartbeat_interval() -> None:
    # Raft §5.2: leaders send periodic heartbeats to maintain their authority.
    env = _cluster(heartbeat_ticks=2)
    env.elect(1)
    env.tick(1, 2)
    rd = env.process_ready(1)
    assert rd is not None
    assert sorted(m.dst for m in rd.messages if m.type is MessageType.HEARTBEAT) == [2, 3]


def test_proposals_append_one_batch_and_return_its_indexes() -> None:
    # Raft §5.3: the leader appends the command to its log and replicates it.
    env = _cluster()
    env.elect(1)
    assert env.nodes[1].propose([b"a", b"b", b"c"]) == (2, 4)
    rd = env.process_ready(1)
    assert rd is not None
    apps = [m for m in rd.messages if m.type is MessageType.APP]
    assert [len(m.entries) for m in apps] == [3, 3]


def test_a_follower_refuses_proposals_and_names_the_leader() -> None:
    # Raft §5.1: clients talking to a follower are redirected to the leader.
    env = _cluster()
    env.elect(1)
    with pytest.raises(NotLeaderError) as exc:
        env.nodes[2].propose([b"x"])
    assert exc.value.leader_hint == 1


def test_a_rejected_append_makes_the_leader_back_up_and_retry() -> None:
    # Raft §5.3: after a rejection, the leader decrements nextIndex and retries.
    env = _cluster()
    env.set_log(1, [1, 1, 1], term=1)
    env.set_log(3, [1, 1, 1], term=1)
    env.elect(1)
    assert _terms(env, 2) == [1, 1, 1, 2]


def test_only_entries_of_the_current_term_are_committed_by_counting_replicas() -> None:
    # Raft §5.4.2 / Figure 8: entry 2 (term 2) is on a majority but stays uncommitted until
    # the leader's own term-4 entry is replicated too.
    env = _cluster(5, check_quorum=False, max_msg_bytes=1)
    for node_id, terms in [(1, [1, 2]), (2, [1, 2]), (3, [1]), (4, [1]), (5, [1, 3])]:
        env.set_log(node_id, terms, term=3)
    env.isolate(5)
    env.dropped_types = {"APP_RESP"}
    env.elect(1)
    assert env.nodes[1].log.committed == 0
    # Replicate entry 2 alone to node 3 and count it: still not committable.
    r = env.nodes[1]
    r.step(_msg(MessageType.APP_RESP, 2, 1, 4, index=3))
    r.step(_msg(MessageType.APP_RESP, 3, 1, 4, index=2))
    assert r.log.committed == 0
    r.step(_msg(MessageType.APP_RESP, 3, 1, 4, index=3))
    assert r.log.committed == 3


def test_the_figure_8_rule_is_what_the_mutation_switch_breaks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Raft §5.4.2: with the rule switched off the same history commits the term-2 entry.
    monkeypatch.setattr(leader, "_UNSAFE_COMMIT_OLD_TERMS", True)
    env = _cluster(5, check_quorum=False, max_msg_bytes=1)
    for node_id, terms in [(1, [1, 2]), (2, [1, 2]), (3, [1]), (4, [1]), (5, [1, 3])]:
        env.set_log(node_id, terms, term=3)
    env.isolate(5)
    env.dropped_types = {"APP_RESP"}
    env.elect(1)
    r = env.nodes[1]
    r.step(_msg(MessageType.APP_RESP, 2, 1, 4, index=3))
    r.step(_msg(MessageType.APP_RESP, 3, 1, 4, index=2))
    assert r.log.committed == 2


FIGURE_7_LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FIGURE_7_FOLLOWERS = {
    "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 1, 4],
    "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 1, 4, 4, 4, 4],
    "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


@pytest.mark.parametrize("case", sorted(FIGURE_7_FOLLOWERS))
def test_figure_7_every_follower_log_is_brought_into_line_with_the_leaders(case: str) -> None:
    # Raft §5.3, Figure 7 (a)-(f): missing entries are filled in, extra and conflicting ones
    # are removed, whichever case the follower is in, once the leader of term 8 takes over.
    env = _cluster(check_quorum=False)
    env.set_log(1, FIGURE_7_LEADER, term=7)
    env.set_log(3, FIGURE_7_LEADER, term=7)
    env.set_log(2, FIGURE_7_FOLLOWERS[case])
    env.elect(1)
    assert env.nodes[1].term == 8
    assert _terms(env, 2) == [*FIGURE_7_LEADER, 8]
    assert env.nodes[2].log.committed == 11


# -- Dissertation: membership, transfer, check-quorum --------------------------------------


def test_a_removed_leader_steps_down_only_after_its_removal_commits() -> None:
    # Dissertation §4.2.2.
    env = _cluster()
    env.elect(1)
    index = env.nodes[1].propose_conf_change(ConfChange(ConfChangeOp.REMOVE, 1))
    assert env.nodes[1].role is Role.LEADER
    assert 1 not in env.nodes[1].config.voters
    env.stabilize()
    assert env.nodes[1].soft_state().role is Role.FOLLOWER
    assert env.nodes[2].log.committed >= index
    assert not env.nodes[1].promotable()


def test_a_learner_never_campaigns_and_is_not_counted_for_commitment() -> None:
    # Dissertation §4.2.1: new servers join without votes.
    env = Env()
    env.add_nodes([1, 2], voters=[1, 2], learners=[3], pre_vote=False)
    env.add_nodes([3], voters=[1, 2], learners=[3], pre_vote=False)
    env.tick(3, 100)
    assert env.nodes[3].role is Role.FOLLOWER
    env.elect(1)
    env.isolate(2)
    env.nodes[1].propose([b"x"])
    env.stabilize()
    assert env.nodes[3].log.last_index() == 2
    assert env.nodes[1].log.committed == 1


def test_a_leadership_transfer_is_abandoned_after_an_election_timeout() -> None:
    # Dissertation §3.10.
    env = _cluster()
    env.elect(1)
    env.isolate(2)
    env.nodes[1].transfer_leadership(2)
    with pytest.raises(NotLeaderError):
        env.nodes[1].propose([b"x"])
    env.tick(1, env.nodes[1].cfg.election_ticks)
    assert env.nodes[1].propose([b"x"]) == (2, 2)
