"""What a follower does when node liveness reports its leader's node down
(``cluster/failover.py``), on a deterministic core cluster."""

from __future__ import annotations

from replog.cluster.failover import EAGER_TICKS, campaign_soon, eager_voter
from replog.raft.ready import Role
from tests.raft.env import Env, settled_three

_settled = settled_three


def _report(env: Env, dead: int, salt: int = 0) -> dict[int, bool]:
    """Node liveness on every other node reports ``dead`` down: who is the eager one."""
    env.partition({dead}, set(env.nodes) - {dead})
    alive = set(env.nodes) - {dead}
    return {n: campaign_soon(env.nodes[n], dead, alive.__contains__, salt) for n in alive}


def test_every_replica_of_a_group_chooses_the_same_one_replica_to_campaign_first() -> None:
    for salt in range(6):
        env = _settled()
        eager = _report(env, 1, salt)
        assert sum(eager.values()) == 1, (salt, eager)
        assert [n for n, yes in eager.items() if yes] == [eager_voter([2, 3], salt, 1)]


def test_the_choice_spreads_over_the_survivors_by_the_salt() -> None:
    assert {eager_voter([2, 3], salt, 1) for salt in range(4)} == {2, 3}
    assert eager_voter([], 5, 1) is None


def test_the_chosen_replica_is_leader_within_its_eager_ticks_and_one_vote_round() -> None:
    env = _settled()
    eager = _report(env, 1)
    chosen = next(n for n, yes in eager.items() if yes)
    for _ in range(EAGER_TICKS):
        for n in eager:
            env.nodes[n].tick()
        env.stabilize()
    assert env.nodes[chosen].role is Role.LEADER
    assert env.nodes[chosen].term == 2  # one pre-vote and one vote round, no split


def test_the_others_end_the_dead_leaders_lease_so_they_grant_the_pre_vote() -> None:
    env = _settled()
    eager = _report(env, 1)
    other = next(n for n, yes in eager.items() if not yes)
    r = env.nodes[other]
    assert (r.role, r.lead, r.term) == (Role.FOLLOWER, None, 1)
    assert r.randomized_timeout - r.election_elapsed > EAGER_TICKS  # the fallback: a timeout


def test_a_report_about_a_node_that_is_not_the_leader_changes_nothing() -> None:
    env = _settled()
    follower = env.nodes[2]
    assert not campaign_soon(follower, 3, lambda peer: True)
    assert (follower.role, follower.lead) == (Role.FOLLOWER, 1)
    assert not campaign_soon(env.nodes[1], 2, lambda peer: True)  # a leader is left alone
    assert env.nodes[1].role is Role.LEADER


def test_a_replica_that_may_not_campaign_only_stays_put() -> None:
    env = _settled()
    env.nodes[2].voting = False
    assert not campaign_soon(env.nodes[2], 1, lambda peer: True)
    assert env.nodes[2].lead == 1
