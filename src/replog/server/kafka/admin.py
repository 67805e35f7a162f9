"""Kafka handlers for the cluster's shape and its topics: ApiVersions, Metadata,
CreateTopics, DeleteTopics and InitProducerId."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from kio.schema.errors import ErrorCode

from replog.api.backend import new_producer_id
from replog.broker.model import PartitionDescription
from replog.errors import ReplogError, UnknownTopicError
from replog.server.kafka.context import KafkaContext
from replog.server.kafka.errors import kafka_error
from replog.server.kafka.responses import make, nested

__all__ = [
    "api_versions",
    "create_topics",
    "delete_topics",
    "init_producer_id",
    "metadata",
]

_NO_TIME = datetime.timedelta(0)


def api_versions(cls: type[Any], served: Mapping[int, tuple[int, int]], error: ErrorCode) -> Any:
    """The ApiVersions answer of the kio class ``cls``: every served API and its versions."""
    version = nested(cls, "ApiVersion")
    keys = tuple(
        make(version, api_key=key, min_version=low, max_version=high)
        for key, (low, high) in sorted(served.items())
    )
    return make(cls, error_code=error, api_keys=keys, throttle_time=_NO_TIME)


async def metadata(ctx: KafkaContext, cls: type[Any], body: Any) -> Any:
    """Every broker, the controller, and the topics asked for (all when null) with each
    partition's leader, replicas and in-sync replicas as broker ids; a partition whose
    leader (or the leader's listener) is not known answers LEADER_NOT_AVAILABLE."""
    broker_cls = nested(cls, "MetadataResponseBroker")
    brokers = tuple(
        make(broker_cls, node_id=b.node_id, host=b.host, port=b.port, rack=None)
        for b in ctx.brokers()
    )
    if body.topics is None:
        names = [topic.name for topic in ctx.topics.list_topics()]
    else:
        names = [topic.name for topic in body.topics]
    topic_cls = nested(cls, "MetadataResponseTopic")
    topics = []
    for name in names:
        try:
            described = ctx.topics.describe_topic(name)
        except UnknownTopicError:
            code, partitions = ErrorCode.unknown_topic_or_partition, ()
        else:
            code = ErrorCode.none
            partitions = tuple(_partition(ctx, cls, name, p) for p in described.partitions)
        topics.append(
            make(topic_cls, error_code=code, name=name, is_internal=False, partitions=partitions)
        )
    return make(
        cls,
        throttle_time=_NO_TIME,
        brokers=brokers,
        cluster_id=ctx.cluster_id,
        controller_id=ctx.controller_id(),
        topics=tuple(topics),
    )


def _partition(ctx: KafkaContext, cls: type[Any], topic: str, p: PartitionDescription) -> Any:
    """One partition of a Metadata answer."""
    lead = ctx.leader_of(topic, p.partition, p.leader)
    leader = ctx.broker(lead) if lead or ctx.cluster is None else None
    replicas = tuple(dict.fromkeys(ctx.broker_id(r) for r in p.replicas))
    in_sync = tuple(dict.fromkeys(ctx.broker_id(r) for r in p.in_sync))
    if ctx.cluster is None:  # a single node: the only replica, always in sync
        replicas = in_sync = (ctx.node_id,)
    return make(
        nested(cls, "MetadataResponsePartition"),
        error_code=ErrorCode.none if leader is not None else ErrorCode.leader_not_available,
        partition_index=p.partition,
        leader_id=leader.node_id if leader is not None else -1,
        leader_epoch=0,
        replica_nodes=replicas,
        isr_nodes=in_sync,
        offline_replicas=(),
    )


async def create_topics(ctx: KafkaContext, cls: type[Any], body: Any) -> Any:
    """Create each topic asked for (``validate_only`` checks nothing and creates nothing);
    each gets its own error code and message."""
    result_cls = nested(cls, "CreatableTopicResult")
    results = []
    for topic in body.topics:
        code, message = ErrorCode.none, None
        partitions = topic.num_partitions if topic.num_partitions > 0 else 1
        replication = topic.replication_factor if topic.replication_factor > 0 else 1
        config = {c.name: c.value for c in topic.configs if c.value is not None}
        if not getattr(body, "validate_only", False):
            try:
                await ctx.topics.create_topic(topic.name, partitions, replication, config)
            except ReplogError as exc:
                code, message = kafka_error(exc), str(exc)
                if code is ErrorCode.invalid_request:
                    code = ErrorCode.invalid_topic_exception
        results.append(
            make(
                result_cls,
                name=topic.name,
                error_code=code,
                error_message=message,
                num_partitions=partitions,
                replication_factor=replication,
            )
        )
    return make(cls, throttle_time=_NO_TIME, topics=tuple(results))


async def delete_topics(ctx: KafkaContext, cls: type[Any], body: Any) -> Any:
    """Delete each topic named; each gets its own error code."""
    result_cls = nested(cls, "DeletableTopicResult")
    results = []
    for name in body.topic_names:
        code = ErrorCode.none
        try:
            await ctx.topics.delete_topic(name)
        except ReplogError as exc:
            code = kafka_error(exc)
        results.append(make(result_cls, name=name, error_code=code))
    return make(cls, throttle_time=_NO_TIME, responses=tuple(results))


async def init_producer_id(ctx: KafkaContext, cls: type[Any], body: Any) -> Any:
    """A fresh idempotent producer id at epoch 0 (transactional ids are not served)."""
    del ctx
    if body.transactional_id is not None:
        return make(
            cls,
            throttle_time=_NO_TIME,
            error_code=ErrorCode.unsupported_version,
            producer_id=-1,
            producer_epoch=-1,
        )
    return make(
        cls,
        throttle_time=_NO_TIME,
        error_code=ErrorCode.none,
        producer_id=new_producer_id(),
        producer_epoch=0,
    )
