"""``AsyncClient``: the asyncio twin of ``Client`` (see ``replog.client.client``)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self

import grpc
from grpc import aio

from replog.client.admin import AsyncAdminMethods
from replog.client.client import (
    _CHANNEL_OPTIONS,
    _CONSUME,
    _DEFAULT,
    _PRODUCE,
    ServerAddress,
    _ClientBase,
    _members,
    _refresh_timeout,
    _servers,
    _stubs,
)
from replog.client.core import (
    Batch,
    HeadersInput,
    Offset,
    RetryPolicy,
    ValueInput,
    batch_from,
    check_offset,
    consume_batch_request,
    consume_request,
    encode_batch_request,
    encode_produce_request,
    encode_record,
    encode_values,
)
from replog.client.picker import DEFAULT_REFRESH_S
from replog.v1 import log_pb2
from replog.v1.record_pb2 import Record

__all__ = ["AsyncClient"]


class AsyncClient(_ClientBase, AsyncAdminMethods):
    """The asyncio twin of ``Client``: the same calls, awaited."""

    def __init__(
        self,
        server: str | Sequence[str] | None = None,
        *,
        timeout: float | None = 10.0,
        retry: RetryPolicy | None = None,
        ca: str | os.PathLike[str] | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
        refresh_s: float = DEFAULT_REFRESH_S,
    ) -> None:
        super().__init__(
            server, timeout=timeout, retry=retry, ca=ca, cert=cert, key=key, refresh_s=refresh_s
        )
        self._channels: dict[str, aio.Channel] = {}

    def _stub(self, addr: str, method: str) -> Any:
        stubs = self._conns.get(addr)
        if stubs is None:
            channel = (
                aio.insecure_channel(addr, options=_CHANNEL_OPTIONS)
                if self._creds is None
                else aio.secure_channel(addr, self._creds, options=_CHANNEL_OPTIONS)
            )
            self._channels[addr] = channel
            stubs = self._conns[addr] = _stubs(channel)
        return stubs[method]

    async def _refresh(self, timeout: float | None) -> None:
        picker = self.picker
        if not picker.begin_refresh(time.monotonic()):
            return
        retry_after_s = 1.0
        try:
            for addr in picker.refresh_candidates():
                try:
                    response = await self._stub(addr, "GetServers")(
                        log_pb2.GetServersRequest(), timeout=_refresh_timeout(timeout)
                    )
                except grpc.RpcError as exc:
                    if not self._ask_another(exc):
                        retry_after_s = picker.refresh_s
                        break
                    continue
                picker.update(_members(response), time.monotonic(), asked=addr)
                return
        finally:
            if picker.refreshing:
                picker.refresh_failed(time.monotonic(), retry_after_s=retry_after_s)

    async def _call(
        self, method: str, request: Any, *, idempotent: bool, timeout: Any, route: str = _CONSUME
    ) -> Any:
        timeout = self.timeout if timeout is _DEFAULT else timeout
        delays = self.retry.delays()
        while True:
            await self._refresh(timeout)
            addr = self._pick(route)
            try:
                return await self._stub(addr, method)(request, timeout=timeout)
            except grpc.RpcError as exc:
                await asyncio.sleep(self._delay_after(addr, exc, delays, idempotent=idempotent))

    async def produce(
        self,
        value: ValueInput,
        key: bytes | None = None,
        headers: HeadersInput = None,
        *,
        topic: str = "",
        partition: int | None = None,
        timeout: float | None = _DEFAULT,
    ) -> Offset:
        """Append one record to ``topic`` (see ``Client.produce``); return its offset, whose
        ``partition`` says where it went."""
        request = encode_produce_request(encode_record(value, key, headers), topic, partition)
        response = await self._call(
            "Produce", request, idempotent=False, timeout=timeout, route=_PRODUCE
        )
        return self._acknowledged(response.offset, 1, topic, response.partition)

    async def produce_batch(
        self,
        values: list[ValueInput] | tuple[ValueInput, ...],
        *,
        topic: str = "",
        partition: int | None = None,
        timeout: float | None = _DEFAULT,
    ) -> tuple[Offset, int]:
        """Append values atomically at contiguous offsets of one partition; return
        ``(base_offset, count)`` (see ``Client.produce_batch``)."""
        request = encode_batch_request(encode_values(values), topic, partition)
        response = await self._call(
            "ProduceBatch", request, idempotent=False, timeout=timeout, route=_PRODUCE
        )
        count = int(response.count)
        return self._acknowledged(response.base_offset, count, topic, response.partition), count

    async def consume(
        self,
        offset: int,
        *,
        topic: str = "",
        partition: int = 0,
        min_offset: int | None = None,
        timeout: float | None = _DEFAULT,
    ) -> Record:
        """The record at ``offset`` of ``topic`` ``partition`` (see ``Client.consume``)."""
        floor = self.picker.read_floor(min_offset, topic, partition)
        request = consume_request(offset, floor, topic, partition)
        response = await self._call("Consume", request, idempotent=True, timeout=timeout)
        record: Record = response.record
        return record

    async def consume_batch(
        self,
        offset: int,
        max_records: int = 1000,
        max_wait_ms: int = 0,
        *,
        max_bytes: int = 0,
        topic: str = "",
        partition: int = 0,
        min_offset: int | None = None,
        timeout: float | None = _DEFAULT,
    ) -> Batch:
        """Records from ``offset`` of ``topic`` ``partition`` (see ``Client.consume_batch``)."""
        floor = self.picker.read_floor(min_offset, topic, partition)
        request = consume_batch_request(
            offset, max_records, max_bytes, max_wait_ms, floor, topic, partition
        )
        if timeout is _DEFAULT and self.timeout is not None:
            timeout = self.timeout + max_wait_ms / 1000
        response = await self._call("ConsumeBatch", request, idempotent=True, timeout=timeout)
        return batch_from(response)

    async def stream_batches(
        self, offset: int, *, max_records: int = 0, topic: str = "", partition: int = 0
    ) -> AsyncIterator[Batch]:
        """Batches of records from ``offset`` of ``topic`` ``partition`` on, tailing;
        reconnects from the next offset."""
        next_offset = check_offset(offset)
        delays = self.retry.delays()
        while True:
            request = consume_batch_request(next_offset, max_records, 0, 0, 0, topic, partition)
            await self._refresh(self.timeout)
            addr = self.picker.for_consume()
            call = self._stub(addr, "ConsumeBatchStream")(request)
            try:
                async for response in call:
                    delays = self.retry.delays()
                    batch = batch_from(response)
                    # Resume where the server said: past control records, even after an empty batch.
                    next_offset = max(next_offset, batch.next_offset or 0)
                    yield batch
                return
            except grpc.RpcError as exc:
                delay = self._delay_after(addr, exc, delays, idempotent=True)
            finally:
                call.cancel()
            await asyncio.sleep(delay)

    async def stream(
        self, offset: int, *, max_records: int = 0, topic: str = "", partition: int = 0
    ) -> AsyncIterator[Record]:
        """Records from ``offset`` of ``topic`` ``partition`` on, tailing new ones, until
        the iteration stops."""
        batches = self.stream_batches(
            offset, max_records=max_records, topic=topic, partition=partition
        )
        async for batch in batches:
            for record in batch.records:
                yield record

    async def servers(self, *, timeout: float | None = _DEFAULT) -> list[ServerAddress]:
        """The cluster's servers (a single server reports itself as leader)."""
        response = await self._call(
            "GetServers", log_pb2.GetServersRequest(), idempotent=True, timeout=timeout
        )
        return _servers(response)

    async def close(self) -> None:
        """Close the connections. Idempotent."""
        channels, self._channels, self._conns = list(self._channels.values()), {}, {}
        for channel in channels:
            await channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
