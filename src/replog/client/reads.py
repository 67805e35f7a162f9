"""The reads of ``Client`` (blocking) and ``AsyncClient`` (awaited) beyond one call: the
reconnecting batch stream, and verified answers (``verify=True``): each twin runs
``RecordVerifier.steps`` (``replog.client.verify``), making the calls it asks for through the
client's retrying ``_call`` and sleeping the pauses it asks for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import grpc

from replog.client.base import _CONSUME, _ClientBase
from replog.client.core import DEFAULT_TIMEOUT, Batch, batch_from, consume_batch_request
from replog.client.verify import Call, RawBatch, Step
from replog.errors import ReplogError
from replog.v1.record_pb2 import Record

__all__ = ["AsyncReadMethods", "ReadMethods"]


class _Steps:
    """One run of a verifier's steps: the next step, given the last one's outcome."""

    def __init__(self, steps: Generator[Step, Any, Batch]) -> None:
        self.steps = steps
        self.reply: Any = None
        self.error: ReplogError | None = None
        self.done: Batch | None = None

    def next(self) -> Step | None:
        """The next step (None once verified: ``done`` is the batch)."""
        reply, error, self.reply, self.error = self.reply, self.error, None, None
        try:
            return self.steps.send(reply) if error is None else self.steps.throw(error)
        except StopIteration as stop:
            self.done = stop.value
            return None


class ReadMethods(_ClientBase):
    """``Client``'s batch stream and verified answers."""

    def _stub(self, addr: str, method: str) -> Any:
        raise NotImplementedError  # the client's own

    def _refresh(self, timeout: float | None) -> None:
        raise NotImplementedError  # the client's own

    def _fetch_routes(self, topic: str) -> None:
        raise NotImplementedError  # the client's own

    def _call(
        self,
        method: str,
        request: Any,
        *,
        idempotent: bool,
        timeout: Any,
        route: str = "consume",
        topic: str = "",
        partition: int | None = None,
    ) -> Any:
        raise NotImplementedError  # the client's own

    def _batch_of(self, answer: Any, topic: str, partition: int, timeout: Any) -> Batch:
        """The batch of a read's answer, verified first if it came from a verifying stub."""
        if not isinstance(answer, RawBatch):
            return batch_from(answer)
        timeout = self.timeout if timeout is DEFAULT_TIMEOUT else timeout
        assert self._verifier is not None
        run = _Steps(self._verifier.steps(answer, topic, partition, timeout))
        while (step := run.next()) is not None:
            if not isinstance(step, Call):
                time.sleep(step.seconds)
                continue
            try:
                run.reply = self._call(
                    step.method,
                    step.request,
                    idempotent=True,
                    timeout=timeout,
                    topic=topic,
                    partition=partition,
                )
            except ReplogError as exc:
                run.error = exc
        assert run.done is not None
        return run.done

    def _record_of(self, answer: Any, topic: str, partition: int, timeout: Any) -> Record:
        """The record of a Consume answer, verified first if it came from a verifying stub."""
        if not isinstance(answer, RawBatch):
            record: Record = answer.record
            return record
        return self._batch_of(answer, topic, partition, timeout).records[0]

    def _batches(
        self, next_offset: int, max_records: int, topic: str, partition: int, method: str
    ) -> Iterator[Batch]:
        """Batches from ``next_offset`` on through stub ``method`` (a stream), reconnecting
        with backoff from the next offset after a lost connection."""
        delays = self.retry.delays()
        while True:
            request = consume_batch_request(next_offset, max_records, 0, 0, 0, topic, partition)
            self._refresh(self.timeout)
            if self._routes_due(topic):
                self._fetch_routes(topic)
            addr = self._pick(_CONSUME, topic, partition)
            call = self._stub(addr, method)(request)
            try:
                for response in call:
                    delays = self.retry.delays()
                    batch = self._batch_of(response, topic, partition, DEFAULT_TIMEOUT)
                    # Resume where the server said: past control records, even after an empty batch.
                    next_offset = max(next_offset, batch.next_offset or 0)
                    yield batch
                return
            except grpc.RpcError as exc:
                delay = self._delay_after(
                    addr, exc, delays, idempotent=True, topic=topic, partition=partition
                )
            finally:
                call.cancel()
            time.sleep(delay)


class AsyncReadMethods(_ClientBase):
    """``AsyncClient``'s batch stream and verified answers (see ``ReadMethods``)."""

    def _stub(self, addr: str, method: str) -> Any:
        raise NotImplementedError  # the client's own

    async def _refresh(self, timeout: float | None) -> None:
        raise NotImplementedError  # the client's own

    async def _fetch_routes(self, topic: str) -> None:
        raise NotImplementedError  # the client's own

    async def _call(
        self,
        method: str,
        request: Any,
        *,
        idempotent: bool,
        timeout: Any,
        route: str = "consume",
        topic: str = "",
        partition: int | None = None,
    ) -> Any:
        raise NotImplementedError  # the client's own

    async def _batch_of(self, answer: Any, topic: str, partition: int, timeout: Any) -> Batch:
        """The batch of a read's answer, verified first if it came from a verifying stub."""
        if not isinstance(answer, RawBatch):
            return batch_from(answer)
        timeout = self.timeout if timeout is DEFAULT_TIMEOUT else timeout
        assert self._verifier is not None
        run = _Steps(self._verifier.steps(answer, topic, partition, timeout))
        while (step := run.next()) is not None:
            if not isinstance(step, Call):
                await asyncio.sleep(step.seconds)
                continue
            try:
                run.reply = await self._call(
                    step.method,
                    step.request,
                    idempotent=True,
                    timeout=timeout,
                    topic=topic,
                    partition=partition,
                )
            except ReplogError as exc:
                run.error = exc
        assert run.done is not None
        return run.done

    async def _record_of(self, answer: Any, topic: str, partition: int, timeout: Any) -> Record:
        """The record of a Consume answer, verified first if it came from a verifying stub."""
        if not isinstance(answer, RawBatch):
            record: Record = answer.record
            return record
        return (await self._batch_of(answer, topic, partition, timeout)).records[0]

    async def _batches(
        self, next_offset: int, max_records: int, topic: str, partition: int, method: str
    ) -> AsyncIterator[Batch]:
        """Batches from ``next_offset`` on (see ``ReadMethods._batches``)."""
        delays = self.retry.delays()
        while True:
            request = consume_batch_request(next_offset, max_records, 0, 0, 0, topic, partition)
            await self._refresh(self.timeout)
            if self._routes_due(topic):
                await self._fetch_routes(topic)
            addr = self._pick(_CONSUME, topic, partition)
            call = self._stub(addr, method)(request)
            try:
                async for response in call:
                    delays = self.retry.delays()
                    batch = await self._batch_of(response, topic, partition, DEFAULT_TIMEOUT)
                    # Resume where the server said: past control records, even after an empty batch.
                    next_offset = max(next_offset, batch.next_offset or 0)
                    yield batch
                return
            except grpc.RpcError as exc:
                delay = self._delay_after(
                    addr, exc, delays, idempotent=True, topic=topic, partition=partition
                )
            finally:
                call.cancel()
            await asyncio.sleep(delay)
