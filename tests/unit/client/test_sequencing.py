"""The idempotent producer's sequencing core, against a model of a partition's leader.

The model appends a batch iff its base sequence follows the producer's last one, answers a
resent batch among the producer's last 5 with its offsets (duplicate), and refuses the rest
(OutOfOrderSequenceError, UnknownProducerError), as the server's contract says. Each story
is a table of what happens to each attempt; the time is a number the test moves.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Self

import pytest

from replog.client.sequencing import (
    SEQUENCE_MODULUS,
    Ack,
    Action,
    Fail,
    Kind,
    NeedId,
    Send,
    Sequencer,
    classify,
)
from replog.errors import (
    BatchTooLargeError,
    DeadlineExceededError,
    InvalidArgumentError,
    OutOfOrderSequenceError,
    PermissionDeniedError,
    ProducerFencedError,
    RecordTooLargeError,
    ReplogError,
    ServerError,
    UnavailableError,
    UnknownProducerError,
)

DELIVERY_S = 10.0
BACKOFF_S = 0.1


@dataclass
class Records:
    """A batch's records, by name ("a0", "a1", ...)."""

    names: list[str]

    @property
    def count(self) -> int:
        return len(self.names)

    def split(self) -> tuple[Self, Self]:
        cut = len(self.names) // 2
        return type(self)(self.names[:cut]), type(self)(self.names[cut:])


def batch(name: str, count: int = 2) -> Records:
    return Records([f"{name}{i}" for i in range(count)])


@dataclass
class Leader:
    """A model of one partition's leader (see the module docstring)."""

    log: list[str] = field(default_factory=list)
    producers: dict[int, tuple[int, deque[tuple[int, int, int]]]] = field(default_factory=dict)
    max_records: int = 1_000

    def append(self, send: Send[Records]) -> tuple[int, bool]:
        records = send.entry.payload
        if any(len(n) > 8 for n in records.names):
            raise RecordTooLargeError(9, 8)
        if records.count > self.max_records:
            raise BatchTooLargeError(self.max_records, records.count)
        pid, base = send.producer_id, send.base_sequence
        if pid not in self.producers:
            if base != 0:
                raise UnknownProducerError(pid)
            self.producers[pid] = (0, deque(maxlen=5))
        expected, recent = self.producers[pid]
        for seq, count, offset in recent:
            if (seq, count) == (base, records.count):
                return offset, True
        if base != expected:
            raise OutOfOrderSequenceError(expected, base)
        offset = len(self.log)
        self.log += records.names
        recent.append((base, records.count, offset))
        self.producers[pid] = ((base + records.count) % SEQUENCE_MODULUS, recent)
        return offset, False


class Story:
    """A sequencer, a leader and a clock; ``fates`` says what happens to an attempt:
    "ok" (default), "lost" (appended, answer lost), "down" (not appended), "overtaken"
    (reaches the leader after the attempts sent with it), or an error to answer."""

    def __init__(self, max_in_flight: int = 4, **fates: str | ReplogError) -> None:
        self.seq: Sequencer[Records] = Sequencer(
            max_in_flight=max_in_flight, delivery_timeout_s=DELIVERY_S, retry_backoff_s=BACKOFF_S
        )
        self.seq.shared_id = (7, 0)  # the producer's id, from InitProducerId
        self.leader = Leader()
        self.fates = fates  # "<first record name>#<attempt>" -> fate
        self.now = 0.0
        self.ids = iter(range(101, 200))
        self.outcomes: dict[str, object] = {}  # first record name -> offset or error
        self.sent: list[tuple[str, int, int]] = []  # (first record, producer id, base seq)
        self.most_in_flight = 0

    def add(self, *batches: Records, partition: int = 0) -> None:
        for b in batches:
            self.seq.add(partition, b, self.now)

    def step(self) -> list[Action[Records]]:
        """One poll; perform every action; return them."""
        actions = self.seq.poll(self.now)
        sends = [a for a in actions if isinstance(a, Send)]
        late = [s for s in sends if self.fate(s) == "overtaken"]
        for action in actions:
            if isinstance(action, NeedId):
                self.seq.id_given(action.partition, next(self.ids), 0)
            elif isinstance(action, Ack | Fail):
                self.finish(action)
        for send in [s for s in sends if s not in late] + late:
            self.deliver(send)
        in_flight = sum(lane.in_flight for lane in self.seq._lanes.values())
        self.most_in_flight = max(self.most_in_flight, in_flight + len(sends))
        return actions

    def fate(self, send: Send[Records]) -> str | ReplogError:
        return self.fates.get(f"{send.entry.payload.names[0]}#{send.attempt}", "ok")

    def deliver(self, send: Send[Records]) -> None:
        self.sent.append((send.entry.payload.names[0], send.producer_id, send.base_sequence))
        fate = self.fate(send)
        if isinstance(fate, ReplogError):
            self.answer(self.seq.failed(send.entry, send.attempt, fate, self.now))
            return
        if fate == "down":
            error = UnavailableError("no leader", certainly_not_applied=True)
            self.answer(self.seq.failed(send.entry, send.attempt, error, self.now))
            return
        try:
            offset, duplicate = self.leader.append(send)
        except ReplogError as exc:
            self.answer(self.seq.failed(send.entry, send.attempt, exc, self.now))
            return
        if fate == "lost":
            error = DeadlineExceededError("the answer was lost")
            self.answer(self.seq.failed(send.entry, send.attempt, error, self.now))
        else:
            self.answer(self.seq.answered(send.entry, send.attempt, offset, duplicate))

    def answer(self, actions: list[Action[Records]]) -> None:
        for action in actions:
            assert isinstance(action, Ack | Fail)
            self.finish(action)

    def finish(self, action: Ack[Records] | Fail[Records]) -> None:
        name = action.entry.payload.names[0]
        assert name not in self.outcomes, f"{name} finished twice"
        self.outcomes[name] = action.base_offset if isinstance(action, Ack) else action.error

    def settle(self, limit: float = 3 * DELIVERY_S) -> None:
        """Poll, moving the clock by the backoff, until nothing is pending."""
        while self.seq.pending():
            self.step()
            assert self.now < limit, "the story does not end"
            self.now += BACKOFF_S


def names(*batches: Records) -> list[str]:
    return [n for b in batches for n in b.names]


# -- stories ----------------------------------------------------------------------------------


def test_batches_in_flight_are_appended_once_in_send_order() -> None:
    story = Story()
    batches = [batch(c) for c in "abcdefgh"]
    story.add(*batches)
    story.settle()
    assert story.leader.log == names(*batches)
    assert story.most_in_flight == 4
    assert [seq for _, _, seq in story.sent] == list(range(0, 16, 2))


@pytest.mark.parametrize(
    "fates",
    [
        pytest.param({"b0#1": "down"}, id="the second batch finds no leader"),
        pytest.param({"b0#1": "lost"}, id="the second batch's answer is lost"),
        pytest.param({"a0#1": "overtaken"}, id="the first batch is overtaken by the others"),
        pytest.param({"c0#1": "down", "c0#2": "down", "b0#1": "lost"}, id="two failures"),
        pytest.param(
            {"b0#1": UnavailableError("connection reset by peer")}, id="a connection reset"
        ),
    ],
)
def test_a_failure_in_the_middle_of_a_pipeline_resends_in_order_without_duplicates(
    fates: dict[str, str | ReplogError],
) -> None:
    story = Story(**fates)
    batches = [batch(c) for c in "abcdef"]
    story.add(*batches)
    story.settle()
    assert story.leader.log == names(*batches)
    offsets = [story.outcomes[b.names[0]] for b in batches]
    assert offsets == list(range(0, 12, 2))
    firsts = [name for name, _, _ in story.sent]
    assert len(firsts) > len(batches)  # something was resent
    assert {pid for _, pid, _ in story.sent} == {7}  # under the one producer id


def test_a_resent_batch_the_leader_holds_is_answered_with_its_offsets() -> None:
    story = Story(**{"a0#1": "lost"})
    story.add(batch("a"), batch("b"))
    story.step()  # a: appended, answer lost; b: appended
    assert story.outcomes == {"b0": 2}
    story.now += BACKOFF_S
    story.step()  # a again: the leader's duplicate answer
    assert story.outcomes == {"b0": 2, "a0": 0}
    assert story.leader.log == ["a0", "a1", "b0", "b1"]


def test_nothing_more_is_sent_until_every_batch_in_flight_is_answered() -> None:
    story = Story()
    story.add(batch("a"), batch("b"), batch("c"))
    sends = [a for a in story.seq.poll(0.0) if isinstance(a, Send)]
    a, b, c = sends
    assert story.seq.failed(a.entry, a.attempt, UnavailableError("down"), 0.0) == []
    story.add(batch("d"))
    assert story.seq.poll(1.0) == []  # b and c are unanswered
    story.seq.failed(b.entry, b.attempt, OutOfOrderSequenceError(0, 2), 1.0)
    story.seq.failed(c.entry, c.attempt, OutOfOrderSequenceError(0, 4), 1.0)
    assert story.seq.poll(0.05) == []  # the backoff after a's failure
    resent = [s.entry.payload.names[0] for s in story.seq.poll(1.0) if isinstance(s, Send)]
    assert resent == ["a0", "b0", "c0", "d0"]


def test_at_most_max_in_flight_batches_from_the_oldest_unacknowledged_are_sent() -> None:
    story = Story(max_in_flight=2)
    story.add(*(batch(c) for c in "abcd"))
    a, b = (s for s in story.seq.poll(0.0) if isinstance(s, Send))
    story.seq.answered(b.entry, b.attempt, 2)
    assert story.seq.poll(0.0) == []  # c would be 3 batches past a, which is unanswered
    story.seq.answered(a.entry, a.attempt, 0)
    assert [s.entry.payload.names[0] for s in story.seq.poll(0.0)] == ["c0", "d0"]


def test_a_batch_given_up_leaves_a_hole_so_the_next_takes_a_fresh_id_from_sequence_0() -> None:
    story = Story(**{f"b0#{n}": "down" for n in range(1, 200)})
    story.add(batch("a"))
    story.step()
    story.add(batch("b"))  # never gets through: times out
    story.now = 5.0
    story.add(batch("c"))  # sent later, deadline later
    while "b0" not in story.outcomes:
        story.step()
        story.now += BACKOFF_S
    assert isinstance(story.outcomes["b0"], UnavailableError)  # the cause
    story.settle()
    assert story.leader.log == names(batch("a"), batch("c"))
    assert story.outcomes["c0"] == 2
    c_sends = [(pid, seq) for name, pid, seq in story.sent if name == "c0"]
    assert c_sends[-1] == (101, 0)  # a fresh producer id, from 0
    assert all(seq == 4 for pid, seq in c_sends[:-1])  # before: its first sequence


def test_an_unknown_producer_gets_a_fresh_id_and_the_queue_is_numbered_from_0() -> None:
    story = Story()
    story.leader.producers[7] = (0, deque(maxlen=5))
    story.add(batch("a"))
    story.settle()
    story.leader.producers.clear()  # the leader forgot producer 7 (expired)
    story.add(batch("b"), batch("c"))
    story.settle()
    assert story.leader.log == names(batch("a"), batch("b"), batch("c"))
    assert story.sent[-2:] == [("b0", 101, 0), ("c0", 101, 2)]


def test_a_batch_with_an_oversized_record_is_split_and_only_that_record_fails() -> None:
    story = Story()
    oversized = Records(["a0", "a1", "toolong-a2", "a3"])
    story.add(oversized, batch("b"))
    story.settle()
    assert isinstance(story.outcomes["toolong-a2"], RecordTooLargeError)
    assert story.leader.log == ["a0", "a1", "a3", "b0", "b1"]
    assert story.outcomes["a0"] == 0 and story.outcomes["a3"] == 2 and story.outcomes["b0"] == 3


def test_delivery_times_out_only_after_the_delivery_timeout_with_the_cause() -> None:
    story = Story(**{f"{c}0#{n}": "down" for c in "ab" for n in range(1, 1000)})
    story.add(batch("a"))
    failed_at: dict[str, float] = {}
    b_sent_at: float | None = None
    while story.seq.pending():
        if story.now >= 1.0 and b_sent_at is None:
            b_sent_at = story.now
            story.add(batch("b"))
        before = set(story.outcomes)
        story.step()
        failed_at |= {name: story.now for name in set(story.outcomes) - before}
        wakeup = story.seq.next_wakeup(story.now)
        assert wakeup is not None and wakeup > story.now  # no busy loop
        story.now = wakeup
    assert failed_at == {"a0": DELIVERY_S, "b0": b_sent_at + DELIVERY_S}
    assert all(isinstance(e, UnavailableError) for e in story.outcomes.values())
    resends = [name for name, _, _ in story.sent if name == "a0"]
    assert len(resends) == pytest.approx(DELIVERY_S / BACKOFF_S, abs=2)  # backoff apart


@pytest.mark.parametrize(
    "error",
    [InvalidArgumentError("bad"), PermissionDeniedError("no"), ServerError("bug")],
    ids=["invalid argument", "permission denied", "server error"],
)
def test_an_error_that_is_not_retriable_fails_its_batch_at_once(error: ReplogError) -> None:
    story = Story(**{"a0#1": error})
    story.add(batch("a"), batch("b"))
    story.settle()
    assert story.outcomes["a0"] is error
    assert story.outcomes["b0"] == 0  # b went through, under a fresh id after a's hole
    assert len([s for s in story.sent if s[0] == "a0"]) == 1


def test_a_fenced_producer_fails_the_partition_at_once_and_later_batches_too() -> None:
    fenced = ProducerFencedError(0, 1)
    story = Story(**{"a0#1": fenced})
    story.add(batch("a"))
    story.step()
    story.add(batch("b"))
    story.step()
    assert story.outcomes == {"a0": fenced, "b0": fenced}
    assert story.seq.pending() == 0


def test_partitions_are_sequenced_independently() -> None:
    story = Story(**{"a0#1": "down"})
    story.add(batch("a"), partition=0)
    story.add(batch("x"), partition=1)
    story.step()
    assert story.outcomes == {"x0": 0}  # partition 1 did not wait for partition 0
    story.settle()
    assert story.outcomes["a0"] == 0


def test_sequences_wrap_at_2_to_the_31() -> None:
    story = Story()
    story.leader.producers[7] = (SEQUENCE_MODULUS - 2, deque(maxlen=5))
    story.seq._lane(0).next_sequence = SEQUENCE_MODULUS - 2
    story.add(batch("a", 4), batch("b"))
    story.settle()
    assert [seq for _, _, seq in story.sent] == [SEQUENCE_MODULUS - 2, 2]
    assert story.leader.log == names(batch("a", 4), batch("b"))


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (UnavailableError("x", certainly_not_applied=False), Kind.RETRY),
        (UnavailableError("x", leader_addr="127.0.0.1:1"), Kind.RETRY),
        (DeadlineExceededError("x"), Kind.RETRY),
        (RecordTooLargeError(2, 1), Kind.SPLIT),
        (BatchTooLargeError(1, 2), Kind.SPLIT),
        (OutOfOrderSequenceError(1, 2), Kind.OUT_OF_ORDER),
        (UnknownProducerError(3), Kind.UNKNOWN_PRODUCER),
        (ProducerFencedError(0, 1), Kind.FENCED),
        (InvalidArgumentError("x"), Kind.FAIL),
        (PermissionDeniedError("x"), Kind.FAIL),
    ],
)
def test_each_error_is_classified_as_the_producer_treats_it(error: ReplogError, kind: Kind) -> None:
    assert classify(error) is kind


def test_more_than_5_in_flight_is_refused() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        Sequencer[Records](max_in_flight=6, delivery_timeout_s=1, retry_backoff_s=0)


class RandomStory(Story):
    """Attempts meet a random fate (seeded): appended, answer lost, leader down, overtaken."""

    def __init__(self, seed: int, delivery_s: float) -> None:
        super().__init__()
        self.seq.delivery_timeout_s = delivery_s
        self.rng = random.Random(seed)
        self.drawn: dict[tuple[int, int], str] = {}
        self.added_at: dict[str, float] = {}
        self.failed_at: dict[str, float] = {}

    def fate(self, send: Send[Records]) -> str | ReplogError:
        key = (id(send.entry), send.attempt)
        if key not in self.drawn:
            self.drawn[key] = self.rng.choices(
                ["ok", "lost", "down", "overtaken"], weights=[6, 1, 2, 1]
            )[0]
        return self.drawn[key]

    def finish(self, action: Ack[Records] | Fail[Records]) -> None:
        super().finish(action)
        if isinstance(action, Fail):
            self.failed_at[action.entry.payload.names[0]] = self.now


@pytest.mark.parametrize("seed", range(200))
def test_random_faults_never_duplicate_reorder_or_fail_early(seed: int) -> None:
    story = RandomStory(seed, delivery_s=[0.3, 1.0, DELIVERY_S][seed % 3])
    batches = [batch(f"b{i:02d}-", story.rng.randint(1, 3)) for i in range(40)]
    for b in batches:
        story.added_at[b.names[0]] = story.now
        story.add(b)
        if story.rng.random() < 0.5:
            story.step()
            story.now += story.rng.choice([0.0, 0.01, BACKOFF_S])
    story.settle(limit=story.now + 10 * DELIVERY_S)
    sent_order = names(*batches)
    log = story.leader.log
    assert len(log) == len(set(log)), "a record appended twice"
    assert log == [n for n in sent_order if n in set(log)], "appended out of send order"
    for b in batches:
        first = b.names[0]
        outcome = story.outcomes[first]
        if isinstance(outcome, int):
            assert log[outcome : outcome + b.count] == b.names  # its own offsets
        else:
            assert isinstance(outcome, UnavailableError | DeadlineExceededError)
            assert story.failed_at[first] >= story.added_at[first] + story.seq.delivery_timeout_s
