"""``RemotePartition``: a partition this node holds no replica of.

Produce is forwarded to the partition's replicas (the one that answered last first, then
the preferred leader and the others; a replica that is not the leader answers with the
leader's address, which is tried next), so every node accepts every produce. Reads are
refused with ``UNAVAILABLE`` carrying a replica's address (clients retry there): this
node has none of the partition's records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from replog.api.backend import NO_CONDITIONS, AppendValue, Conditions, ReadResult, ServerInfo
from replog.cluster.forward import Forwarder
from replog.errors import InvalidArgumentError, UnavailableError
from replog.v1.record_pb2 import Record

__all__ = ["RemotePartition"]

_ATTEMPTS = 10
_RETRY_WAIT_S = 0.1


class RemotePartition:
    """A LogBackend for a partition held elsewhere; see the module docstring."""

    def __init__(
        self,
        topic: str,
        partition: int,
        replicas: Sequence[str],
        *,
        address_of: Callable[[str], str | None],
        forwarder: Forwarder,
        servers: Callable[[], list[ServerInfo]],
        last_leader: dict[tuple[str, int], str],
        topic_id: int | None = None,
        leader_of: Callable[[str, int], str] | None = None,
    ) -> None:
        """``address_of(node name)``; ``last_leader`` remembers, per partition, the address
        that accepted the last forward (shared by every RemotePartition of the node);
        ``leader_of(topic, partition)`` names the partition's leader as its replicas last
        said ("" when not known)."""
        self.topic = topic
        self.partition = partition
        self.replicas = tuple(replicas)
        self.topic_id = topic_id
        self._address_of = address_of
        self._forwarder = forwarder
        self._servers = servers
        self._last = last_leader
        self._leader_of = leader_of

    def _candidates(self) -> list[str]:
        addrs = [a for a in map(self._address_of, self.replicas) if a]
        last = self._last.get((self.topic, self.partition))
        if last:
            addrs = [last, *(a for a in addrs if a != last)]
        return addrs

    def submit(
        self, values: Sequence[AppendValue], conditions: Conditions = NO_CONDITIONS
    ) -> asyncio.Future[int]:
        """Forward to the partition's leader (see the module docstring)."""
        return asyncio.ensure_future(self._submit(values, conditions))

    async def _submit(self, values: Sequence[AppendValue], conditions: Conditions) -> int:
        if not values:
            raise InvalidArgumentError("a batch needs at least one record")
        key = (self.topic, self.partition)
        turn = 0
        for attempt in range(_ATTEMPTS):
            candidates = self._candidates()
            if not candidates:
                break
            addr = candidates[turn % len(candidates)]
            try:
                base = await self._forwarder.forward(
                    addr,
                    values,
                    self.topic,
                    self.partition,
                    topic_id=self.topic_id,
                    conditions=conditions,
                )
            except UnavailableError as exc:
                if not exc.certainly_not_applied:
                    raise
                if exc.leader_addr:
                    self._last[key] = exc.leader_addr  # tried next (it comes first)
                    turn = 0
                else:
                    self._last.pop(key, None)
                    turn += 1
                await asyncio.sleep(_RETRY_WAIT_S if attempt else 0)
                continue
            self._last[key] = addr
            return base
        raise UnavailableError(
            f"no replica of {self.topic}/{self.partition} accepted the records",
            certainly_not_applied=True,
        )

    def _not_here(self) -> UnavailableError:
        candidates = self._candidates()
        return UnavailableError(
            f"this node holds no replica of {self.topic}/{self.partition}; "
            f"its replicas are {', '.join(self.replicas)}",
            certainly_not_applied=True,
            leader_addr=candidates[0] if candidates else "",
        )

    def refusal(self) -> UnavailableError:
        """The error a call this node cannot serve answers with (naming a replica)."""
        return self._not_here()

    def read_from(self, offset: int, max_records: int, max_bytes: int) -> ReadResult:
        """Refused: UnavailableError naming a replica's address."""
        raise self._not_here()

    def read(self, offset: int) -> Record:
        """Refused: UnavailableError naming a replica's address."""
        raise self._not_here()

    @property
    def lowest_offset(self) -> int:
        """Refused: UnavailableError naming a replica's address."""
        raise self._not_here()

    @property
    def high_watermark(self) -> int:
        """Refused: UnavailableError naming a replica's address."""
        raise self._not_here()

    async def wait_for_data(self, offset: int, timeout_s: float | None) -> bool:
        """Refused: UnavailableError naming a replica's address."""
        raise self._not_here()

    async def wait_committed(self, offset: int, timeout_s: float | None) -> bool:
        """Refused: UnavailableError naming a replica's address."""
        raise self._not_here()

    def servers(self) -> list[ServerInfo]:
        """The cluster's servers, the partition's leader marked when its replicas (or the
        last forward) named one; none marked when not known (never the controller's)."""
        leader = self._leader_of(self.topic, self.partition) if self._leader_of else ""
        addr = self._address_of(leader) if leader else None
        addr = addr or self._last.get((self.topic, self.partition), "")
        return [
            ServerInfo(
                s.id, s.rpc_addr, is_leader=bool(addr) and s.rpc_addr == addr, is_voter=s.is_voter
            )
            for s in self._servers()
        ]

    @property
    def closing(self) -> bool:
        """Never closing itself (each forward is its own call)."""
        return False
