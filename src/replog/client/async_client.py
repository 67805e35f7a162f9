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

from replog.client.admin import DESCRIBE, AsyncAdminMethods, TopicDescription, topic_from
from replog.client.base import (
    _CHANNEL_OPTIONS,
    _CONSUME,
    _DEFAULT,
    _PRODUCE,
    _REFRESH_TIMEOUT_S,
    ServerAddress,
    _members,
    _refresh_timeout,
    _servers,
    _stubs,
    _to_error,
    verifier_for,
)
from replog.client.core import (
    Batch,
    HeadersInput,
    Offset,
    RetryPolicy,
    ValueInput,
    check_offset,
    condition_fields,
    consume_batch_request,
    consume_request,
    encode_batch_request,
    encode_produce_request,
    encode_record,
    encode_values,
)
from replog.client.groups import AsyncGroupMethods
from replog.client.picker import DEFAULT_REFRESH_S
from replog.client.reads import AsyncReadMethods
from replog.client.routes import merge_descriptions, merge_routes, needs_more
from replog.errors import PermissionDeniedError
from replog.v1 import admin_pb2, log_pb2
from replog.v1.record_pb2 import Record

__all__ = ["AsyncClient"]


class AsyncClient(AsyncReadMethods, AsyncAdminMethods, AsyncGroupMethods):
    """The asyncio twin of ``Client``: the same calls, awaited (``verify_key`` and
    ``verify_state`` too)."""

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
        verify_key: str | None = None,
        verify_state: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(
            server, timeout=timeout, retry=retry, ca=ca, cert=cert, key=key, refresh_s=refresh_s
        )
        self._verifier = verifier_for(verify_key, verify_state)
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
        self,
        method: str,
        request: Any,
        *,
        idempotent: bool,
        timeout: Any,
        route: str = _CONSUME,
        topic: str = "",
        partition: int | None = None,
    ) -> Any:
        timeout = self.timeout if timeout is _DEFAULT else timeout
        delays = self.retry.delays()
        while True:
            await self._refresh(timeout)
            if partition is not None and self._routes_due(topic):
                await self._fetch_routes(topic)
            addr = self._pick(route, topic, partition)
            try:
                return await self._stub(addr, method)(request, timeout=timeout)
            except grpc.RpcError as exc:
                delay = self._delay_after(
                    addr, exc, delays, idempotent=idempotent, topic=topic, partition=partition
                )
                await asyncio.sleep(delay)

    async def _group_call(
        self, method: str, request: Any, group: str, *, idempotent: bool, timeout: Any
    ) -> Any:
        """One call of ``group``'s, to its coordinator (following the servers' hints)."""
        timeout = self.timeout if timeout is _DEFAULT else timeout
        delays = self.retry.delays()
        while True:
            await self._refresh(timeout)
            addr = self._pick_coordinator(group)
            try:
                return await self._stub(addr, method)(request, timeout=timeout)
            except grpc.RpcError as exc:
                delay = self._group_delay_after(group, addr, exc, delays, idempotent=idempotent)
                if delay:
                    await asyncio.sleep(delay)

    async def _each_server(self, method: str, request: Any, timeout: Any) -> list[Any]:
        """``method``'s answer from every server of the cluster (an error if none answers)."""
        timeout = self.timeout if timeout is _DEFAULT else timeout
        await self._refresh(timeout)
        calls = [self._stub(a, method)(request, timeout=timeout) for a in self._server_addresses()]
        answers, failure = [], None
        for outcome in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(outcome, grpc.RpcError):
                failure = _to_error(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                answers.append(outcome)
        if failure is not None and not answers:
            raise failure
        return answers

    async def _fetch_routes(self, topic: str) -> None:
        """Learn ``topic``'s partition leaders and replicas (see ``replog.client.routes``)."""
        answers, denied = await self._describe_answers(topic, stop_when_known=True)
        routes = merge_routes(answers, self._route_answers()[1]) if answers else []
        self.routes.update(topic, routes, time.monotonic(), hold=denied and not routes)

    async def _describe_answers(
        self, topic: str, *, stop_when_known: bool
    ) -> tuple[list[tuple[str, TopicDescription]], bool]:
        """(node id, its description of ``topic``) from the servers in turn (the leader
        first; with ``stop_when_known``, until every partition's leader is known), and
        whether one refused for lack of permission."""
        asked, addresses = self._route_answers()
        names = {a: n for n, a in addresses.items()}
        answers: list[tuple[str, TopicDescription]] = []
        denied = False
        for addr in asked:
            try:
                response = await self._stub(addr, DESCRIBE)(
                    admin_pb2.DescribeTopicRequest(name=topic), timeout=_REFRESH_TIMEOUT_S
                )
            except grpc.RpcError as exc:
                denied = denied or isinstance(_to_error(exc), PermissionDeniedError)
                continue
            answers.append((names.get(addr, addr), topic_from(response.topic)))
            if stop_when_known and not needs_more(merge_routes(answers, addresses)):
                break
        return answers, denied

    async def _complete(self, description: TopicDescription) -> TopicDescription:
        """A description one node gave, completed by the others' for the partitions whose
        leader it does not know (a cluster node knows only the partitions it holds)."""
        if all(p.leader for p in description.partitions) or len(self.picker.members) < 2:
            return description
        answers, _ = await self._describe_answers(description.name, stop_when_known=False)
        return merge_descriptions(answers) if answers else description

    async def produce(
        self,
        value: ValueInput,
        key: bytes | None = None,
        headers: HeadersInput = None,
        *,
        topic: str = "",
        partition: int | None = None,
        timeout: float | None = _DEFAULT,
        expected_offset: int | None = None,
        expected_key_offset: int | None = None,
    ) -> Offset:
        """Append one record to ``topic`` (see ``Client.produce``); return its offset, whose
        ``partition`` says where it went."""
        request = encode_produce_request(
            encode_record(value, key, headers), topic, partition
        ) + condition_fields(expected_offset, expected_key_offset, batch=False)
        if key and partition is None and self._routes_due(topic):
            await self._refresh(self.timeout if timeout is _DEFAULT else timeout)
            await self._fetch_routes(topic)  # the partition count places the key
        response = await self._call(
            "Produce",
            request,
            idempotent=False,
            timeout=timeout,
            route=_PRODUCE,
            topic=topic,
            partition=self._partition_of(topic, partition, key),
        )
        return self._acknowledged(response.offset, 1, topic, response.partition)

    async def produce_batch(
        self,
        values: list[ValueInput] | tuple[ValueInput, ...],
        *,
        topic: str = "",
        partition: int | None = None,
        timeout: float | None = _DEFAULT,
        expected_offset: int | None = None,
        expected_key_offset: int | None = None,
    ) -> tuple[Offset, int]:
        """Append values atomically at contiguous offsets of one partition; return
        ``(base_offset, count)`` (see ``Client.produce_batch``, its conditions too)."""
        request = encode_batch_request(encode_values(values), topic, partition)
        request += condition_fields(expected_offset, expected_key_offset, batch=True)
        response = await self._call(
            "ProduceBatch",
            request,
            idempotent=False,
            timeout=timeout,
            route=_PRODUCE,
            topic=topic,
            partition=partition,
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
        verify: bool = False,
    ) -> Record:
        """The record at ``offset`` of ``topic`` ``partition`` (see ``Client.consume``)."""
        floor = self.picker.read_floor(min_offset, topic, partition)
        request = consume_request(offset, floor, topic, partition)
        method = self._read_method("Consume", verify)
        response = await self._call(
            method, request, idempotent=True, timeout=timeout, topic=topic, partition=partition
        )
        return await self._record_of(response, topic, partition, timeout)

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
        verify: bool = False,
    ) -> Batch:
        """Records from ``offset`` of ``topic`` ``partition`` (see ``Client.consume_batch``)."""
        method = self._read_method("ConsumeBatch", verify)
        floor = self.picker.read_floor(min_offset, topic, partition)
        request = consume_batch_request(
            offset, max_records, max_bytes, max_wait_ms, floor, topic, partition
        )
        if timeout is _DEFAULT and self.timeout is not None:
            timeout = self.timeout + max_wait_ms / 1000
        response = await self._call(
            method, request, idempotent=True, timeout=timeout, topic=topic, partition=partition
        )
        return await self._batch_of(response, topic, partition, timeout)

    def stream_batches(
        self,
        offset: int,
        *,
        max_records: int = 0,
        topic: str = "",
        partition: int = 0,
        verify: bool = False,
    ) -> AsyncIterator[Batch]:
        """Batches of records from ``offset`` of ``topic`` ``partition`` on, tailing;
        reconnects from the next offset (see ``Client.stream_batches``, ``verify`` too)."""
        method = self._read_method("ConsumeBatchStream", verify)
        return self._batches(check_offset(offset), max_records, topic, partition, method)

    def stream(
        self,
        offset: int,
        *,
        max_records: int = 0,
        topic: str = "",
        partition: int = 0,
        verify: bool = False,
    ) -> AsyncIterator[Record]:
        """Records from ``offset`` of ``topic`` ``partition`` on, tailing new ones, until
        the iteration stops (``verify``: as ``stream_batches``)."""
        batches = self.stream_batches(
            offset, max_records=max_records, topic=topic, partition=partition, verify=verify
        )
        return (record async for batch in batches for record in batch.records)

    async def servers(self, *, timeout: float | None = _DEFAULT) -> list[ServerAddress]:
        """The cluster's servers (a single server reports itself as leader)."""
        response = await self._call(
            "GetServers", log_pb2.GetServersRequest(), idempotent=True, timeout=timeout
        )
        return _servers(response)

    async def init_producer_id(self, *, timeout: float | None = _DEFAULT) -> tuple[int, int]:
        """A fresh ``(producer_id, producer_epoch)`` for idempotent produces;
        UnsupportedError from a server that does not hand them out."""
        response = await self._call(
            "InitProducerId", log_pb2.InitProducerIdRequest(), idempotent=True, timeout=timeout
        )
        return int(response.producer_id), int(response.producer_epoch)

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
