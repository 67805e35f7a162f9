"""Carrying out replica moves: a partition group's membership goes to its move's target.

The controller records a move as a partition's ``target`` replica set
(``ReassignPartition``, ``DecommissionNode``); this module makes the group's Raft
configuration reach it and then records that with ``CompleteReassignment``. It runs on
every node; for each partition group this node LEADS whose controller state has a
target, one step per round, chosen from what the configuration is now (level-based: a
leader change, a restart or a lost step only means the next round looks again):

1. a target node that is not a member is added as a learner;
2. a learner of the target is promoted once caught up (``RaftNode`` promotes on its
   ticks too; a quiet group does not tick, so the driver asks as well);
3. a member not in the target is removed, learners first; a leader that is to be
   removed first hands leadership to a caught-up target voter (the new leader goes on);
4. once the configuration is the target (all voters, no one else), the controller
   leader is asked to record ``CompleteReassignment`` (here, or over
   ``replog.v1.Cluster/CompleteReassignment``); the old replicas then drop their groups.

One membership change at a time, each committed before the next is planned: a target
replica holds the log before it votes, and a majority of the old set stays in every
configuration on the way.

The controller group (``default`` partition 0) leaves the same way on the controller
leader: a decommissioning node that no user partition lists any more is removed from
the controller group's configuration (the leader hands over first if it is that node),
and then ``CompleteReassignment`` of ``default`` records the target, which makes the
node ``removable``: it is then decommissioned (it stays in the node list as such).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from replog.broker.names import DEFAULT_TOPIC
from replog.cluster.controller_commands import CompleteReassignment
from replog.cluster.controller_state import ControllerState
from replog.cluster.learners import PROMOTE_MAX_LAG
from replog.cluster.members import raft_id
from replog.cluster.partitions import HostedPartition, PartitionGroups
from replog.cluster.raft_node import RaftNode
from replog.errors import ReplogError
from replog.raft.core import Raft
from replog.raft.errors import ConfChangeError, NotLeaderError, RaftError
from replog.raft.membership import ConfChange, ConfChangeOp

__all__ = ["MoveDriver", "Step", "plan_step"]

log = logging.getLogger("replog.cluster.moves")

#: A learner is promoted once within this many entries of the commit index (as RaftNode).
#: At most this many groups take a step at the same time.
_MAX_BUSY = 32
_CHANGE_TIMEOUT_S = 10.0

Op = Literal["wait", "add", "promote", "remove", "transfer", "complete", "done"]
Complete = Callable[[CompleteReassignment], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Step:
    """What a leader does next for one move: ``node`` is the raft id it concerns."""

    op: Op
    node: int = 0


def plan_step(
    voters: Iterable[int],
    learners: Iterable[int],
    leader: int,
    target: Iterable[int],
    caught_up: Callable[[int], bool],
) -> Step:
    """The next step of a move to ``target`` from a committed configuration of ``voters``
    and ``learners`` led by ``leader`` (see the module docstring); ``caught_up(n)``:
    whether member ``n`` holds the log up to about the commit index. ``done`` when the
    configuration is the target; ``complete`` is the caller's to decide."""
    voters, learners, wanted = set(voters), set(learners), set(target)
    members = voters | learners
    missing = sorted(wanted - members)
    if missing:
        return Step("add", missing[0])
    for learner in sorted(learners & wanted):
        return Step("promote", learner) if caught_up(learner) else Step("wait", learner)
    extra_learners = sorted(learners - wanted)
    if extra_learners:
        return Step("remove", extra_learners[0])
    extra = sorted(voters - wanted)
    if not extra:
        return Step("done")
    if leader in extra:
        ready = [n for n in sorted(wanted) if caught_up(n)]
        return Step("transfer", ready[0]) if ready else Step("wait", leader)
    return Step("remove", extra[0])


def _caught_up(raft: Raft) -> Callable[[int], bool]:
    def check(node: int) -> bool:
        if node == raft.id:
            return True
        pr = raft.progress.get(node)
        return pr is not None and pr.match > 0 and raft.log.committed - pr.match <= PROMOTE_MAX_LAG

    return check


def _settled(raft: Raft) -> bool:
    """Whether this leader may plan a change: it committed an entry of its term and no
    configuration change is in flight."""
    log_ = raft.log
    return (
        raft.confs.last_pending_index() <= log_.committed and log_.term(log_.committed) == raft.term
    )


def _plan(raft: Raft, target: Iterable[int]) -> Step:
    if not _settled(raft):
        return Step("wait")
    config = raft.confs.committed
    return plan_step(config.voters, config.learners, raft.id, target, _caught_up(raft))


class MoveDriver:
    """Drives the moves of the groups this node leads; see the module docstring."""

    def __init__(
        self,
        *,
        name: str,
        state: Callable[[], ControllerState],
        partitions: PartitionGroups,
        controller: RaftNode,
        controller_leader: Callable[[], bool],
        complete: Complete,
        interval_s: float = 0.25,
    ) -> None:
        """``complete(command)`` records a finished move through the controller leader."""
        self.name = name
        self._state = state
        self._partitions = partitions
        self._controller = controller
        self._controller_leader = controller_leader
        self._complete = complete
        self.interval_s = interval_s
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._kick = asyncio.Event()

    def kick(self, *_: object) -> None:
        """Look again at once (a metadata change; usable as a Metadata listener)."""
        self._kick.set()

    async def run(self) -> None:
        """Take steps until cancelled; rounds are frequent only while a move exists."""
        try:
            while True:
                moving = self.round()
                timeout = self.interval_s if moving else 5.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), timeout)
                self._kick.clear()
        finally:
            for task in list(self._busy.values()):
                task.cancel()

    def round(self) -> bool:
        """Start a step for every led group with a move not busy yet; whether any move
        exists in the state (a decommission is its moves, the controller group's included)."""
        state = self._state()
        moving = False
        for ref, hosted in sorted(self._partitions.hosted.items()):
            topic = state.topics.get(ref.topic)
            if topic is None or topic.topic_id != ref.topic_id:
                continue
            if ref.partition >= len(topic.partitions):
                continue
            part = topic.partitions[ref.partition]
            if part.target is None:
                continue
            moving = True
            if hosted.node.is_leader:
                command = CompleteReassignment(ref.topic, ref.partition, ref.topic_id, part.target)
                self._start(f"{ref.topic}/{ref.partition}", self._step_group(hosted, command))
        default = state.topics.get(DEFAULT_TOPIC)
        if default is not None and default.partitions[0].target is not None:
            moving = True
            if self._controller_leader():
                self._start("", self._step_controller(state))
        return moving

    def _start(self, key: str, step: Awaitable[None]) -> None:
        if key in self._busy or len(self._busy) >= _MAX_BUSY:
            if asyncio.iscoroutine(step):
                step.close()
            return
        task = asyncio.ensure_future(step)
        self._busy[key] = task
        task.add_done_callback(lambda _: self._busy.pop(key, None))

    # -- a partition group ----------------------------------------------------------------

    async def _step_group(self, hosted: HostedPartition, command: CompleteReassignment) -> None:
        target = [raft_id(n) for n in command.replicas]
        where = f"{command.topic}/{command.partition}"
        try:
            step = await hosted.node.call(functools.partial(_plan, target=target))
            if step.op == "done":
                await self._complete(command)
                log.info("move of %s to %s complete", where, list(command.replicas))
            else:
                await _take(hosted.node, step, where)
        except (ConfChangeError, RaftError, ReplogError) as exc:
            log.debug("move of %s: step postponed: %s", where, exc)
        except Exception as exc:  # never kill the driver: the next round tries again
            log.warning("move of %s: unexpected error", where, exc_info=exc)

    # -- the controller group ---------------------------------------------------------------

    async def _step_controller(self, state: ControllerState) -> None:
        default = state.topics[DEFAULT_TOPIC].partitions[0]
        if default.target is None:
            return
        leaving = set(default.replicas) - set(default.target)
        listed = {
            n
            for name, topic in state.topics.items()
            if name != DEFAULT_TOPIC
            for p in topic.partitions
            for n in p.hosts
        }
        if leaving & listed:
            return  # its user partitions are still moving
        node = self._controller
        gone = frozenset(raft_id(n) for n in leaving)
        try:
            step = await node.call(functools.partial(_plan_leaving, gone=gone))
            if step.op == "done":
                command = CompleteReassignment(DEFAULT_TOPIC, 0, 0, default.target)
                await self._complete(command)
                log.info("decommissioned %s: it left the controller group", sorted(leaving))
                return
            await _take(node, step, "the controller group")
        except (ConfChangeError, RaftError, ReplogError) as exc:
            log.debug("controller membership step postponed: %s", exc)


def _plan_leaving(raft: Raft, *, gone: frozenset[int]) -> Step:
    """The controller group's next step to lose the members ``gone`` (and only them: a
    node joining meanwhile is the join path's)."""
    if not _settled(raft):
        return Step("wait")
    config = raft.confs.committed
    present = sorted(gone & (config.voters | config.learners))
    if not present:
        return Step("done")
    if raft.id not in present:
        return Step("remove", present[0])
    caught_up = _caught_up(raft)
    ready = [n for n in sorted(config.voters - gone) if caught_up(n)]
    return Step("transfer", ready[0]) if ready else Step("wait", raft.id)


async def _take(node: RaftNode, step: Step, where: str) -> None:
    """Carry out one step on the group of ``node`` (its leader)."""
    if step.op == "wait":
        return
    if step.op == "transfer":
        log.info("%s: handing leadership to %s before leaving it", where, step.node)
        await node.call(functools.partial(_transfer, to=step.node))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + node.options.tick_s * node.options.election_ticks
        while node.is_leader and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return
    ops = {"add": ConfChangeOp.ADD_LEARNER, "promote": ConfChangeOp.PROMOTE}
    op = ops.get(step.op, ConfChangeOp.REMOVE)
    log.info("%s: %s %s", where, op.value, step.node)
    await node.propose_change(ConfChange(op, step.node), _CHANGE_TIMEOUT_S)


def _transfer(raft: Raft, *, to: int) -> None:
    try:
        raft.transfer_leadership(to)
    except (NotLeaderError, ValueError) as exc:
        log.debug("transfer to %s not started: %s", to, exc)
