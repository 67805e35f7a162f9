"""Kafka handlers for records: Produce, Fetch and ListOffsets, over the same partition
backends (``TopicsBackend.partition``) as the gRPC and HTTP edges.

A produced batch is decoded once and submitted as one append (an idempotent producer's
id, epoch and base sequence become replog's own Conditions); a fetch answers each
partition from one read, as LogAppendTime batches (one per append time)."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Coroutine
from typing import Any

from kio.schema.errors import ErrorCode

from replog.api.backend import Conditions
from replog.errors import (
    BatchTooLargeError,
    OffsetOutOfRangeError,
    ReplogError,
    UnsupportedError,
)
from replog.server.kafka.context import KafkaContext
from replog.server.kafka.errors import kafka_error
from replog.server.kafka.fetch_records import payloads_to_batches
from replog.server.kafka.mapping import encoded_records
from replog.server.kafka.records import read_batches
from replog.server.kafka.responses import make, nested

__all__ = ["begin_produce", "fetch", "list_offsets", "produce"]

log = logging.getLogger("replog.kafka")
_NO_TIME = datetime.timedelta(0)
_EARLIEST = -2
_LATEST = -1
_FETCH_RECORDS = 10_000
_ACKS = (0, 1, -1)


async def produce(ctx: KafkaContext, cls: type[Any], body: Any) -> Any:
    """Append each partition's batches; None (no answer) for acks=0, as Kafka does. An
    acks other than 0, 1 and -1 is INVALID_REQUIRED_ACKS for every partition, nothing
    appended."""
    return await begin_produce(ctx, cls, body)


def begin_produce(ctx: KafkaContext, cls: type[Any], body: Any) -> Coroutine[Any, Any, Any]:
    """Submit every partition's batch now, in the request's order (so requests begun one
    after another append in that order), and return the coroutine that waits for their
    outcomes and gives the response (None for acks=0), as ``produce`` does."""
    wanted = [(topic.name, part) for topic in body.topic_data for part in topic.partition_data]
    submitted: list[_Submitted]
    if body.acks in _ACKS:
        submitted = [_submit_partition(ctx, name, part, body.acks) for name, part in wanted]
    else:
        refused = (ErrorCode.invalid_required_acks, -1, f"acks {body.acks} is not 0, 1 or -1")
        submitted = [refused] * len(wanted)
    for one in submitted:
        if isinstance(one, asyncio.Future):
            one.add_done_callback(_retrieved)  # an abandoned answer's failure is not logged
    return _produce_response(cls, body.acks, wanted, submitted)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


_Outcome = tuple[ErrorCode, int, str | None]
_Submitted = _Outcome | asyncio.Future[int]


async def _produce_response(
    cls: type[Any], acks: int, wanted: list[tuple[str, Any]], submitted: list[_Submitted]
) -> Any:
    outcomes = [await _outcome(one) for one in submitted]
    if acks == 0:
        return None
    part_cls = nested(cls, "PartitionProduceResponse")
    by_topic: dict[str, list[Any]] = {}
    for (name, part), (code, base, message) in zip(wanted, outcomes, strict=True):
        by_topic.setdefault(name, []).append(
            make(
                part_cls,
                index=part.index,
                error_code=code,
                base_offset=base,
                log_append_time=None,
                log_start_offset=-1,
                record_errors=(),
                error_message=message,
            )
        )
    topic_cls = nested(cls, "TopicProduceResponse")
    responses = tuple(
        make(topic_cls, name=name, partition_responses=tuple(parts))
        for name, parts in by_topic.items()
    )
    return make(cls, responses=responses, throttle_time=_NO_TIME)


async def _outcome(submitted: _Submitted) -> _Outcome:
    """What the partition's append came to. Shielded: an answer abandoned (its connection
    closed) must never cancel an append already submitted, which the backend would then
    skip while appending the requests submitted after it (a hole, then a retry out of
    order); the append goes on, its outcome unknown to the client, as with any lost answer."""
    if not isinstance(submitted, asyncio.Future):
        return submitted
    try:
        base = await asyncio.shield(submitted)
    except ReplogError as exc:
        return kafka_error(exc), -1, str(exc)
    return ErrorCode.none, int(base), None


def _submit_partition(ctx: KafkaContext, topic: str, part: Any, acks: int) -> _Submitted:
    """The partition's batch decoded and submitted (its future), or the outcome that
    refused it before anything was submitted."""
    try:
        backend = ctx.topics.partition(topic, part.index)
        ctx.require_leader(topic, part.index)  # Kafka clients produce to leaders only
        try:
            batches = read_batches(bytes(part.records or b""))
        except UnsupportedError as exc:
            # Magic 0/1 or an unknown codec: Kafka's InvalidRecordException (a client must
            # not retry it, as it would CORRUPT_MESSAGE; UNSUPPORTED_VERSION is the API's).
            return ErrorCode.invalid_record, -1, str(exc)
        if len(batches) != 1:
            # Kafka's rule from Produce v3 on: one batch per partition, so a request is
            # appended all or nothing (two would be two appends, the first perhaps landed
            # when the second is refused, and a client retrying the whole would duplicate it).
            return ErrorCode.invalid_record, -1, "a produce carries exactly one record batch"
        header, body = batches[0]
        records = encoded_records(body, header.record_count)  # no message per record
        if len(records) > ctx.max_batch_records:
            raise BatchTooLargeError(len(records), ctx.max_batch_records)
        conditions = Conditions(
            producer_id=max(0, header.producer_id),
            producer_epoch=max(0, header.producer_epoch) if header.producer_id >= 0 else 0,
            base_sequence=max(0, header.base_sequence) if header.producer_id >= 0 else 0,
            acks_leader=acks == 1,
        )
        return backend.submit(records, conditions)
    except ReplogError as exc:
        return kafka_error(exc), -1, str(exc)


async def fetch(ctx: KafkaContext, cls: type[Any], body: Any) -> Any:
    """Each partition's records from its fetch offset (LogAppendTime batches), waiting up to
    ``max_wait`` for ``min_bytes`` and stopping near ``max_bytes`` (the first batch is
    always whole, so a large record still makes progress)."""
    wanted = [(t.topic, p) for t in body.topics for p in t.partitions]
    answers = _read_all(ctx, wanted, body.max_bytes)
    size = sum(len(a[3]) for a in answers)
    wait_s = body.max_wait.total_seconds()
    if size < body.min_bytes and wait_s > 0:  # min_bytes 0: answer at once, data or not
        await _wait_any(ctx, wanted, answers, wait_s)
        answers = _read_all(ctx, wanted, body.max_bytes)
    data_cls = nested(cls, "PartitionData")
    by_topic: dict[str, list[Any]] = {}
    for (topic, request), (code, high, low, records) in zip(wanted, answers, strict=True):
        by_topic.setdefault(topic, []).append(
            make(
                data_cls,
                partition_index=request.partition,
                error_code=code,
                high_watermark=high,
                last_stable_offset=high,
                log_start_offset=low,
                aborted_transactions=None if code is ErrorCode.none else (),
                preferred_read_replica=-1,
                records=records,
            )
        )
    topic_cls = nested(cls, "FetchableTopicResponse")
    responses = tuple(
        make(topic_cls, topic=name, partitions=tuple(parts)) for name, parts in by_topic.items()
    )
    return make(
        cls, throttle_time=_NO_TIME, error_code=ErrorCode.none, session_id=0, responses=responses
    )


def _read_all(
    ctx: KafkaContext, wanted: list[tuple[str, Any]], max_bytes: int
) -> list[tuple[ErrorCode, int, int, bytes]]:
    budget = max_bytes if max_bytes > 0 else 1 << 30
    answers = []
    some = False
    for topic, request in wanted:
        # Only the first partition with records may go over the request's max_bytes (one
        # whole record at least, as Kafka); the others' must fit in what is left, or they
        # answer their watermarks only (the client fetches them next time).
        limit = max(1, min(budget, request.partition_max_bytes)) if budget > 0 else 0
        answer = _read_partition(ctx, topic, request, limit)
        if some and len(answer[3]) > budget:
            answer = (answer[0], answer[1], answer[2], b"")
        some = some or bool(answer[3])
        budget = max(0, budget - len(answer[3]))
        answers.append(answer)
    return answers


def _read_partition(
    ctx: KafkaContext, topic: str, request: Any, max_bytes: int
) -> tuple[ErrorCode, int, int, bytes]:
    """One partition's error code, high watermark, log start and records (empty bytes,
    never null, when there are none: librdkafka refuses a null record set); ``max_bytes``
    0: the watermarks only."""
    try:
        backend = ctx.topics.partition(topic, request.partition)
        ctx.require_leader(topic, request.partition)
        low, high = backend.lowest_offset, backend.high_watermark
        offset = request.fetch_offset
        if not low <= offset <= high:
            raise OffsetOutOfRangeError(offset, low, high)
        if offset == high or max_bytes == 0:  # nothing to read, or no budget left for it
            return ErrorCode.none, high, low, b""
        payloads, next_offset = backend.read_from(offset, _FETCH_RECORDS, max_bytes)
    except ReplogError as exc:
        return kafka_error(exc), -1, -1, b""
    if next_offset <= offset:
        return ErrorCode.none, high, low, b""
    batches = payloads_to_batches(payloads, offset, next_offset, max_bytes)
    return ErrorCode.none, high, low, batches


async def _wait_any(
    ctx: KafkaContext,
    wanted: list[tuple[str, Any]],
    answers: list[tuple[ErrorCode, int, int, bytes]],
    wait_s: float,
) -> None:
    waits = []
    for (topic, request), (code, *_rest) in zip(wanted, answers, strict=True):
        if code is not ErrorCode.none:
            continue
        try:
            backend = ctx.topics.partition(topic, request.partition)
        except ReplogError:
            continue  # deleted since the read: the next read answers its error
        waits.append(asyncio.ensure_future(backend.wait_for_data(request.fetch_offset, wait_s)))
    if not waits:
        return
    try:
        await asyncio.wait(waits, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def list_offsets(ctx: KafkaContext, cls: type[Any], body: Any) -> Any:
    """Each partition's earliest (-2) or latest (-1) offset, or the first offset whose
    record's timestamp is at or after the one asked for (-1 when none is)."""
    part_cls = nested(cls, "ListOffsetsPartitionResponse")
    topic_cls = nested(cls, "ListOffsetsTopicResponse")
    topics = []
    for topic in body.topics:
        parts = []
        for request in topic.partitions:
            code, timestamp, offset = ErrorCode.none, -1, -1
            try:
                timestamp, offset = await _offset_for(
                    ctx, topic.name, request.partition_index, request.timestamp
                )
            except ReplogError as exc:
                code = kafka_error(exc)
            parts.append(
                make(
                    part_cls,
                    partition_index=request.partition_index,
                    error_code=code,
                    timestamp=timestamp,
                    offset=offset,
                    leader_epoch=0,
                )
            )
        topics.append(make(topic_cls, name=topic.name, partitions=tuple(parts)))
    return make(cls, throttle_time=_NO_TIME, topics=tuple(topics))


async def _offset_for(
    ctx: KafkaContext, topic: str, partition: int, timestamp: int
) -> tuple[int, int]:
    backend = ctx.topics.partition(topic, partition)
    ctx.require_leader(topic, partition)
    if timestamp == _EARLIEST:
        return -1, backend.lowest_offset
    if timestamp == _LATEST:
        return -1, backend.high_watermark
    return await ctx.time_indexes.offset_for(topic, partition, backend, timestamp)
