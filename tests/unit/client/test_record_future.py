"""RecordFuture behaves as a concurrent.futures.Future although its state lives in a batch."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, as_completed, wait

import pytest

from replog.client.record_future import RecordFuture, _Batch
from replog.errors import RecordTooLargeError, UnavailableError


def batch_of(n: int) -> tuple[_Batch, list[RecordFuture]]:
    batch = _Batch(threading.Condition())
    for i in range(n):
        batch.parts += (b"h%d" % i, b"v%d" % i)
    batch.count = n
    return batch, [RecordFuture(batch, i) for i in range(n)]


def test_a_queued_record_future_is_running_and_cannot_be_cancelled() -> None:
    _, (future,) = batch_of(1)
    assert isinstance(future, Future)
    assert future.running() and not future.done() and not future.cancel()
    assert not future.cancelled()
    with pytest.raises(TimeoutError):
        future.result(timeout=0)


def test_resolving_a_batch_gives_each_future_its_offset_in_send_order() -> None:
    batch, futures = batch_of(5)
    batch.resolve(100, None)
    assert [f.result(timeout=0) for f in futures] == [100, 101, 102, 103, 104]
    assert all(f.done() and f.exception() is None for f in futures)
    assert "finished" in repr(futures[0])


def test_a_failed_batch_fails_every_future_with_the_same_error() -> None:
    batch, futures = batch_of(3)
    error = UnavailableError("down")
    batch.resolve(0, error)
    for future in futures:
        assert future.exception(timeout=0) is error
        with pytest.raises(UnavailableError):
            future.result()


def test_a_waiting_thread_wakes_when_its_batch_is_resolved() -> None:
    batch, (future,) = batch_of(1)
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(future.result(timeout=30)))
    waiter.start()
    batch.resolve(7, None)
    waiter.join(30)
    assert got == [7]


def test_callbacks_run_on_resolution_or_at_once_when_already_done() -> None:
    batch, (first, second) = batch_of(2)
    seen: list[int] = []
    first.add_done_callback(lambda f: seen.append(f.result()))
    batch.resolve(10, None)
    assert seen == [10]
    second.add_done_callback(lambda f: seen.append(f.result()))
    assert seen == [10, 11]


def test_a_failing_callback_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch, (future,) = batch_of(1)
    seen: list[str] = []

    def bad(_: Future[int]) -> None:
        raise ValueError("boom")

    future.add_done_callback(bad)
    future.add_done_callback(lambda f: seen.append("ran"))
    with caplog.at_level(logging.ERROR):
        batch.resolve(0, None)
    assert seen == ["ran"]
    assert "exception calling callback" in caplog.text


def test_wait_and_as_completed_see_record_futures_finish() -> None:
    batch, futures = batch_of(3)
    other, (late,) = batch_of(1)
    done_events: list[set[Future[int]]] = []

    def waiter() -> None:
        done, _ = wait([*futures, late], timeout=30, return_when=FIRST_COMPLETED)
        done_events.append(done)

    thread = threading.Thread(target=waiter)
    thread.start()
    batch.resolve(0, None)
    thread.join(30)
    assert done_events and done_events[0] >= set(futures)
    results: list[int] = []
    thread = threading.Thread(
        target=lambda: results.extend(f.result() for f in as_completed([late], timeout=30))
    )
    thread.start()
    other.resolve(50, None)
    thread.join(30)
    assert results == [50]


def test_a_split_batch_gives_each_future_the_outcome_of_its_half() -> None:
    batch, futures = batch_of(5)
    seen: list[int] = []
    futures[3].add_done_callback(lambda f: seen.append(3))  # watched before the split
    first, second = batch.split()
    assert (first.count, second.count) == (2, 3)
    assert first.parts == [b"h0", b"v0", b"h1", b"v1"]
    assert second.size == sum(map(len, second.parts))
    third, fourth = second.split()  # records 2 | 3, 4
    futures[4].add_done_callback(lambda f: seen.append(4))  # watched after both splits
    first.resolve(10, None)
    third.resolve(0, RecordTooLargeError(10, 5))
    assert [f.result() for f in futures[:2]] == [10, 11]
    assert isinstance(futures[2].exception(), RecordTooLargeError)
    assert not futures[3].done() and seen == []
    fourth.resolve(20, None)
    assert [f.result() for f in futures[3:]] == [20, 21]
    assert seen == [3, 4]


def test_only_the_producer_resolves_a_record_future() -> None:
    _, (future,) = batch_of(1)
    with pytest.raises(RuntimeError):
        future.set_result(1)
    with pytest.raises(RuntimeError):
        future.set_exception(ValueError())
    with pytest.raises(RuntimeError):
        future.set_running_or_notify_cancel()


@pytest.mark.parametrize("method", ["result", "exception"])
def test_a_waiter_woken_by_another_batch_of_the_producer_keeps_waiting(method: str) -> None:
    # Every batch of a producer shares one Condition: Future.result() (no timeout) used to
    # return from its one wait() when another batch resolved, and raise TimeoutError.
    condition = threading.Condition()
    other, mine = _Batch(condition), _Batch(condition)
    other.count = mine.count = 1
    future = RecordFuture(mine, 0)
    outcome: list[object] = []

    def wait_for_it() -> None:
        try:
            outcome.append(getattr(future, method)())
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    for _ in range(50):  # wake it again and again while its own batch is still in flight
        other.resolve(1, None)
        waiter.join(0.01)
    assert waiter.is_alive() and outcome == [], outcome
    mine.resolve(9, None)
    waiter.join(30)
    assert outcome == ([9] if method == "result" else [None])
    with pytest.raises(TimeoutError):  # a timeout still ends the wait
        RecordFuture(_Batch(condition), 0).result(timeout=0.05)
