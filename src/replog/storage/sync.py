"""Group commit: one fsync serves every append that is waiting for it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from replog.errors import StorageIOError

log = logging.getLogger("replog.storage")

__all__ = ["GroupCommit", "IntervalSync"]


class GroupCommit:
    """Makes appends durable in groups.

    ``sync`` is called by one waiter at a time — the leader — outside any writer lock; it
    fsyncs and returns the offset below which everything is now durable. Waiters that
    arrive while it runs wait for it and, if their offset is still not covered, one of
    them leads the next fsync. After a failed fsync every waiter, now and later, gets
    StorageIOError: the kernel may have dropped the dirty pages, so retrying would lie.
    Task-safe.
    """

    def __init__(self, sync: Callable[[], int], durable_offset: int) -> None:
        self._sync = sync
        self._cond = threading.Condition()
        self._durable = durable_offset
        self._leader_running = False
        self._error: StorageIOError | None = None

    @property
    def durable_offset(self) -> int:
        """Every offset below this is durable."""
        return self._durable

    @property
    def error(self) -> StorageIOError | None:
        """The fsync failure that stopped this committer, if any."""
        return self._error

    def reset(self, durable_offset: int) -> None:
        """Lower the durable point after the log's tail was truncated (caller holds the locks)."""
        with self._cond:
            self._durable = min(self._durable, durable_offset)

    def fail(self, error: StorageIOError) -> None:
        """Refuse every later wait with ``error``."""
        with self._cond:
            self._error = error
            self._cond.notify_all()

    def wait_durable(self, offset: int) -> None:
        """Return once every offset below ``offset`` is durable; raise StorageIOError if not."""
        while True:
            with self._cond:
                while True:
                    if self._error is not None:
                        raise self._error
                    if self._durable >= offset:
                        return
                    if not self._leader_running:
                        self._leader_running = True
                        break
                    self._cond.wait()
            self._lead()

    def _lead(self) -> None:
        try:
            covered = self._sync()
        except OSError as exc:
            error = StorageIOError(f"fsync failed: {exc}")
            with self._cond:
                self._error = error
                self._leader_running = False
                self._cond.notify_all()
            raise error from exc
        except BaseException:
            with self._cond:
                self._leader_running = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._durable = max(self._durable, covered)
            self._leader_running = False
            self._cond.notify_all()


class IntervalSync:
    """A background thread that makes appends durable every ``interval_ms`` (sync="interval")."""

    def __init__(
        self, committer: GroupCommit, written: Callable[[], int], interval_ms: int
    ) -> None:
        self._committer = committer
        self._written = written
        self._interval_s = interval_ms / 1000
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replog-log-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            target = self._written()
            if self._committer.durable_offset >= target:
                continue
            try:
                self._committer.wait_durable(target)
            except StorageIOError as exc:
                log.error("periodic fsync failed; the log accepts no more appends: %s", exc)
                return

    def stop(self) -> None:
        """Stop the thread and wait for it (an fsync under way finishes first)."""
        self._stopped.set()
        self._thread.join()
