"""The pure quiescence questions (``replog.raft.quiesce``) on a deterministic core cluster, and
the ``quiesce`` flag on the wire."""

from __future__ import annotations

from dataclasses import replace

from replog.cluster.transport import message_from_proto, message_to_proto
from replog.raft.membership import ConfChange, ConfChangeOp
from replog.raft.messages import Message, MessageType
from replog.raft.quiesce import follower_may_quiesce, leader_may_quiesce, quiesce_heartbeats
from replog.v1 import raft_pb2
from tests.raft.env import settled_three

_settled = settled_three


def test_a_leader_whose_log_every_member_holds_committed_may_quiesce() -> None:
    env = _settled()
    leader = env.nodes[1]
    assert leader_may_quiesce(leader)
    assert not leader_may_quiesce(env.nodes[2])  # followers never lead the quiescence
    beats = quiesce_heartbeats(leader)
    assert [(m.dst, m.type, m.quiesce) for m in beats] == [
        (2, MessageType.HEARTBEAT, True),
        (3, MessageType.HEARTBEAT, True),
    ]
    assert {m.commit for m in beats} == {leader.log.last_index()}


def test_a_leader_with_an_uncommitted_or_unreplicated_entry_may_not_quiesce() -> None:
    env = _settled()
    leader = env.nodes[1]
    leader.propose([b"y"])
    assert not leader_may_quiesce(leader)  # appended, nobody acknowledged it
    env.process_ready(1)
    env.deliver(2)
    env.process_ready(2)
    env.deliver(1)  # node 2 acknowledges: committed, but node 3 lacks it
    assert leader.log.committed == leader.log.last_index()
    assert not leader_may_quiesce(leader)
    env.stabilize()
    assert leader_may_quiesce(leader)


def test_a_pending_transfer_or_membership_change_keeps_the_leader_awake() -> None:
    env = _settled()
    leader = env.nodes[1]
    leader.lead_transferee = 2
    assert not leader_may_quiesce(leader)
    leader.lead_transferee = None
    leader.propose_conf_change(ConfChange(ConfChangeOp.ADD_LEARNER, 4))
    assert not leader_may_quiesce(leader)
    env.stabilize()
    assert not leader_may_quiesce(leader)  # learner 4 (never started) holds nothing


def test_asking_changes_nothing_in_the_core() -> None:
    env = _settled()
    leader = env.nodes[1]
    before = (leader.hard_state(), leader.soft_state(), leader.has_ready(), len(leader.msgs))
    leader_may_quiesce(leader)
    quiesce_heartbeats(leader)
    assert (leader.hard_state(), leader.soft_state(), leader.has_ready(), len(leader.msgs)) == (
        before
    )


def test_a_follower_quiesces_only_on_its_leaders_quiesce_heartbeat_at_its_own_end() -> None:
    env = _settled()
    follower = env.nodes[2]
    beat = quiesce_heartbeats(env.nodes[1])[0]
    follower.step(beat)
    assert follower_may_quiesce(follower, beat)
    assert not follower_may_quiesce(follower, replace(beat, quiesce=False))
    assert not follower_may_quiesce(follower, replace(beat, src=3))  # not its leader
    assert not follower_may_quiesce(follower, replace(beat, term=beat.term - 1))
    assert not follower_may_quiesce(follower, replace(beat, commit=beat.commit - 1))
    env.nodes[1].propose([b"y"])
    env.process_ready(1)
    env.deliver(2)  # node 2 now holds an entry past that commit index
    assert not follower_may_quiesce(follower, beat)


def test_the_quiesce_flag_survives_the_wire_both_ways() -> None:
    for flag in (True, False):
        m = Message(type=MessageType.HEARTBEAT, src=1, dst=2, term=4, commit=9, quiesce=flag)
        pb = message_to_proto(m)
        assert pb.quiesce is flag
        wired = message_from_proto(raft_pb2.RaftMessage.FromString(pb.SerializeToString()))
        assert wired == m


def test_a_leader_quiesces_past_a_member_its_node_liveness_holds_down_and_only_then() -> None:
    env = _settled()
    leader = env.nodes[1]
    env.isolate(3)
    leader.propose([b"y"])
    env.stabilize()
    assert leader.log.committed == leader.log.last_index()  # node 2 made the majority
    assert not leader_may_quiesce(leader)  # node 3 lacks the entry
    assert not leader_may_quiesce(leader, lambda peer: True)
    assert leader_may_quiesce(leader, lambda peer: peer != 3)
    assert not leader_may_quiesce(leader, lambda peer: peer != 2)  # 3, held live, lacks it
