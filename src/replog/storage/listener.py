"""What a Log tells a structure kept in step with its records (the verifiable log's tree)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["LogListener"]


class LogListener(Protocol):
    """Hears of every change to a Log's records, in order, under its write lock (a derived
    structure kept in step, such as the verifiable log's tree). It must not raise: an error
    of its own is its own to keep and report."""

    def appended(self, first: int, payloads: Sequence[bytes]) -> None:
        """Records ``first`` to ``first + len(payloads) - 1`` were written with these bytes."""

    def truncated_after(self, offset: int) -> None:
        """Every record after ``offset`` was removed."""

    def was_reset(self, next_offset: int) -> None:
        """Every record was removed; the log continues at ``next_offset``."""

    def closing(self) -> None:
        """The log is being closed (no more changes)."""
