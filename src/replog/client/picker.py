"""Which server a call goes to: the leader for produces, followers (round-robin) for reads.

I/O-free, shared by ``Client`` and ``AsyncClient`` (the clients do the ``GetServers`` calls and
feed the answers in), in the spirit of proglog's resolver + picker: the *view* is the member
list of the last ``GetServers``; it is refreshed every ``refresh_s`` and as soon as a call to a
member fails (``mark_failed``) or a server names another leader (``set_leader``).

Choices:
- produce: the known leader; else any member that has not failed lately (a follower forwards
  the request to the leader, so this only costs a hop).
- consume: round-robin over the voters that are not the leader (followers); the leader when
  there are none; failed members are skipped until the next refresh.
- refresh: ask members that have not failed first, then the bootstrap addresses.

A view of one member keeps the bootstrap address the client was given: a single server
reports the address it bound, which may not be the one clients reach it by.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from replog.errors import InvalidArgumentError

__all__ = ["Member", "Picker", "parse_bootstrap"]

DEFAULT_REFRESH_S = 10.0
_DEFAULT_TOPIC = "default"  # the server's topic for calls that name none
_FAILED_TTL_S = 3.0


@dataclass(frozen=True, slots=True)
class Member:
    """One server of the view."""

    id: str
    addr: str
    is_leader: bool = False
    is_voter: bool = True


def parse_bootstrap(servers: str | Sequence[str]) -> list[str]:
    """``"a:1,b:2"`` or ``["a:1", "b:2"]`` -> a list of ``HOST:PORT`` (checked, deduplicated)."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    out: list[str] = []
    for raw in items:
        addr = raw.strip()
        host, sep, port = addr.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidArgumentError(f"server address must be HOST:PORT, got {raw!r}")
        if addr not in out:
            out.append(addr)
    if not out:
        raise InvalidArgumentError("at least one server address is needed")
    return out


class Picker:
    """The client's view of the cluster and its choice of server per call (thread-safe)."""

    def __init__(self, bootstrap: Sequence[str], *, refresh_s: float = DEFAULT_REFRESH_S) -> None:
        """``bootstrap``: addresses to start from; ``refresh_s``: how old a view may get."""
        self.bootstrap = list(bootstrap)
        self.refresh_s = refresh_s
        self.members: list[Member] = []
        self._leader: str | None = None
        self._failed: dict[str, float] = {}  # address -> when a call to it failed
        self._next = 0
        self._refreshed_at: float | None = None
        self._refreshing = False
        self._lock = threading.Lock()
        # The highest offset this client's own produces were acknowledged at, per (topic,
        # partition): reads that do not say otherwise wait until the node serving them has
        # committed it, so a client always reads its own writes even from a follower that
        # has not heard of them yet. Each partition has offsets of its own.
        self._written: dict[tuple[str, int], int] = {}

    @property
    def written(self) -> int:
        """The last offset this client wrote to the default topic's partition 0."""
        return self._written.get((_DEFAULT_TOPIC, 0), 0)

    def note_written(self, last_offset: int, topic: str = "", partition: int = 0) -> None:
        """Remember that a produce of this client was acknowledged up to ``last_offset`` on
        ``topic`` ("" = default) ``partition``."""
        where = (topic or _DEFAULT_TOPIC, partition)
        with self._lock:
            self._written[where] = max(self._written.get(where, 0), last_offset)

    def read_floor(self, min_offset: int | None, topic: str = "", partition: int = 0) -> int:
        """The ``min_offset`` a read of ``topic`` ``partition`` sends: the caller's, else
        this client's last write there."""
        if min_offset is not None:
            return min_offset
        return self._written.get((topic or _DEFAULT_TOPIC, partition), 0)

    # -- the view -----------------------------------------------------------------------------

    @property
    def leader(self) -> str | None:
        """The leader's address, if known."""
        return self._leader

    def update(self, servers: Sequence[Member], now: float, *, asked: str) -> None:
        """A ``GetServers`` answer from ``asked`` at time ``now`` becomes the view."""
        if len(servers) == 1:
            only = servers[0]
            servers = [Member(only.id, asked, only.is_leader, only.is_voter)]
        with self._lock:
            self.members = [m for m in servers if m.addr]
            leaders = [m.addr for m in self.members if m.is_leader]
            self._leader = leaders[0] if leaders else None
            # A member that just failed stays avoided for a while: its peers may still name a
            # dead leader until they elect a new one.
            self._failed = {a: t for a, t in self._failed.items() if now - t < _FAILED_TTL_S}
            if self._leader in self._failed:
                self._leader = None
            self._refreshed_at = now
            self._refreshing = False

    def refresh_failed(self, now: float, *, retry_after_s: float = 1.0) -> None:
        """No member answered ``GetServers`` (or the caller may not ask): keep the view and
        try again after ``retry_after_s``."""
        with self._lock:
            self._refreshing = False
            self._refreshed_at = now - self.refresh_s + min(retry_after_s, self.refresh_s)

    @property
    def refreshing(self) -> bool:
        """Whether a refresh is under way (``begin_refresh`` said so and it has not ended)."""
        return self._refreshing

    def begin_refresh(self, now: float) -> bool:
        """True (once, until ``update``/``refresh_failed``) when the view should be refreshed."""
        with self._lock:
            stale = self._refreshed_at is None or now - self._refreshed_at >= self.refresh_s
            if not stale or self._refreshing:
                return False
            self._refreshing = True
            return True

    def refresh_candidates(self) -> list[str]:
        """Where to ask ``GetServers``: healthy members, then bootstrap, then failed ones."""
        with self._lock:
            known = [m.addr for m in self.members]
            failed = self._failed
        healthy = [a for a in [*known, *self.bootstrap] if a not in failed]
        return list(dict.fromkeys([*healthy, *known, *self.bootstrap]))

    def on_unavailable(self, addr: str, now: float, leader_hint: str = "") -> None:
        """A call to ``addr`` failed with UNAVAILABLE; ``leader_hint`` is the leader it named."""
        if leader_hint and leader_hint != addr:
            self.set_leader(leader_hint)
        else:
            self.mark_failed(addr, now)

    def is_failed(self, addr: str) -> bool:
        """Whether a call to ``addr`` failed lately (it is avoided for a few seconds)."""
        with self._lock:
            at = self._failed.get(addr)
        return at is not None and time.monotonic() - at < _FAILED_TTL_S

    def mark_failed(self, addr: str, now: float) -> None:
        """A call to ``addr`` failed as if it were down: avoid it and refresh the view."""
        with self._lock:
            self._failed[addr] = now
            if self._leader == addr:
                self._leader = None
            self._refreshed_at = None

    def set_leader(self, addr: str) -> None:
        """A server named ``addr`` as the leader (a not-leader answer)."""
        with self._lock:
            self._leader = addr
            self._failed.pop(addr, None)
            if addr not in (m.addr for m in self.members):
                self.members = [*self.members, Member(addr, addr, True)]

    # -- choices --------------------------------------------------------------------------------

    def _healthy(self) -> list[Member]:
        return [m for m in self.members if m.addr not in self._failed]

    def for_produce(self) -> str:
        """The address to send a produce to."""
        with self._lock:
            if self._leader is not None and self._leader not in self._failed:
                return self._leader
            return self._round_robin([m.addr for m in self._healthy()])

    def for_consume(self) -> str:
        """The address to send a read to: followers in turn, else the leader."""
        with self._lock:
            healthy = self._healthy()
            followers = [m.addr for m in healthy if m.is_voter and m.addr != self._leader]
            if followers:
                return self._round_robin(followers)
            return self._round_robin([m.addr for m in healthy])

    def _round_robin(self, addrs: list[str]) -> str:
        if not addrs:  # nothing known or everything failed: start over from the bootstrap list
            addrs = [a for a in self.bootstrap if a not in self._failed] or self.bootstrap
        self._next += 1
        return addrs[self._next % len(addrs)]
