"""Node liveness verdicts on a fake clock: a peer is up from its first batch, reported down
once when silent past the timeout, up again when heard; a failing hook harms no other."""

from __future__ import annotations

from replog.cluster.liveness import Liveness


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _liveness() -> tuple[Liveness, Clock, list[tuple[str, int]]]:
    clock = Clock()
    liveness = Liveness(1.0, clock)
    events: list[tuple[str, int]] = []
    liveness.on_peer_down(lambda p: events.append(("down", p)))
    liveness.on_peer_up(lambda p: events.append(("up", p)))
    return liveness, clock, events


def test_a_peer_never_heard_is_not_live_and_not_reported_down() -> None:
    liveness, clock, events = _liveness()
    clock.now += 10
    liveness.check()
    assert not liveness.live(7)
    assert events == []


def test_a_silent_peer_is_reported_down_once_and_up_again_when_heard() -> None:
    liveness, clock, events = _liveness()
    liveness.heard(7)
    liveness.heard(7)
    assert events == [("up", 7)]  # once, not per batch
    clock.now += 1.0
    liveness.check()
    assert liveness.live(7)
    assert events == [("up", 7)]  # silent for exactly the timeout: still live
    clock.now += 0.01
    assert not liveness.live(7)
    for _ in range(3):
        liveness.check()
        clock.now += 0.5
    assert events == [("up", 7), ("down", 7)]
    liveness.heard(7)
    assert events == [("up", 7), ("down", 7), ("up", 7)]
    assert liveness.live(7)


def test_peers_are_judged_each_on_its_own() -> None:
    liveness, clock, events = _liveness()
    liveness.heard(1)
    clock.now += 0.8
    liveness.heard(2)
    clock.now += 0.8
    liveness.check()
    assert events == [("up", 1), ("up", 2), ("down", 1)]
    assert liveness.live(2)


def test_a_failing_hook_does_not_stop_the_others_nor_the_verdicts() -> None:
    liveness, clock, events = _liveness()

    def broken(peer: int) -> None:
        raise RuntimeError("a bug in a hook")

    liveness.on_peer_down(broken)
    liveness.on_peer_down(lambda p: events.append(("down-after", p)))
    liveness.heard(1)
    liveness.heard(2)
    clock.now += 2
    liveness.check()
    assert sorted(events) == [("down", 1), ("down", 2), ("down-after", 1), ("down-after", 2),
                              ("up", 1), ("up", 2)]  # fmt: skip


def test_a_forgotten_peer_is_not_reported() -> None:
    liveness, clock, events = _liveness()
    liveness.heard(3)
    liveness.forget(3)
    clock.now += 5
    liveness.check()
    assert events == [("up", 3)]
    assert not liveness.live(3)


def test_a_check_that_runs_late_reports_no_peer_down_until_the_next_on_time() -> None:
    # The checking node's own loop stalled (busy, or starved of CPU) for longer than the
    # timeout: the batches its peers sent meanwhile wait unread behind the check, so their
    # silence is this node's, not theirs. Reporting them down woke every group they led
    # and, on a loaded 3-node cluster of 1,000 partitions, started an election storm.
    liveness, clock, events = _liveness()
    liveness.heard(7)
    liveness.check()
    clock.now += 0.25
    liveness.check()
    clock.now += 1.5  # the loop stalled: no check, nothing read
    liveness.check()
    assert events == [("up", 7)]
    liveness.heard(7)  # the batches that waited are read now
    clock.now += 0.25
    liveness.check()
    assert events == [("up", 7)]
    for _ in range(5):  # checked on time, and 7 really is silent
        clock.now += 0.25
        liveness.check()
    assert events == [("up", 7), ("down", 7)]
