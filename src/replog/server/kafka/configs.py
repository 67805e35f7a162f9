"""DescribeConfigs (32): a topic's configuration under Kafka's names.

replog's topic keys are named as Kafka names them (``retention_ms`` is ``retention.ms``,
``max_record_bytes`` is ``max.message.bytes``); keys Kafka does not have keep replog's
name with dots (``sync``, ``key.index``). Two read-only keys say how replog behaves:
``cleanup.policy=delete`` and ``message.timestamp.type=LogAppendTime``. Only topics are
described: a broker or other resource answers INVALID_REQUEST."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from replog.errors import ReplogError
from replog.server.kafka.context import KafkaContext
from replog.server.kafka.errors import kafka_error
from replog.server.kafka.responses import make, nested

__all__ = ["KAFKA_NAMES", "describe_configs", "kafka_configs"]

_NO_TIME = datetime.timedelta(0)
_TOPIC = 2
_DYNAMIC_TOPIC_CONFIG, _DEFAULT_CONFIG = 1, 5
KAFKA_NAMES = {"max_record_bytes": "max.message.bytes"}
"""replog's topic keys whose Kafka name is not theirs with dots."""
_FIXED = {"cleanup.policy": "delete", "message.timestamp.type": "LogAppendTime"}


def kafka_configs(config: dict[str, str]) -> dict[str, tuple[str, bool]]:
    """A topic's configuration as Kafka names it: name -> (value, read only)."""
    named = {KAFKA_NAMES.get(k, k.replace("_", ".")): (v, False) for k, v in config.items()}
    named.update({k: (v, True) for k, v in _FIXED.items()})
    return dict(sorted(named.items()))


async def describe_configs(ctx: KafkaContext, cls: type[Any], body: Any) -> Any:
    """Each topic resource's configuration (the keys asked for, or all)."""
    result_cls = nested(cls, "DescribeConfigsResult")
    entry_cls = nested(cls, "DescribeConfigsResourceResult")
    results = []
    for resource in body.resources:
        code, message, entries = ErrorCode.none, None, ()
        if resource.resource_type != _TOPIC:
            code, message = ErrorCode.invalid_request, "only topic configurations are described"
        else:
            try:
                described = ctx.topics.describe_topic(resource.resource_name)
            except ReplogError as exc:
                code, message = kafka_error(exc), str(exc)
            else:
                wanted = resource.configuration_keys
                entries = tuple(
                    make(
                        entry_cls,
                        name=name,
                        value=value,
                        read_only=read_only,
                        config_source=_DEFAULT_CONFIG if read_only else _DYNAMIC_TOPIC_CONFIG,
                        is_sensitive=False,
                        synonyms=(),
                    )
                    for name, (value, read_only) in kafka_configs(dict(described.config)).items()
                    if wanted is None or not wanted or name in wanted
                )
        results.append(
            make(
                result_cls,
                error_code=code,
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
                configs=entries,
            )
        )
    return make(cls, throttle_time=_NO_TIME, results=tuple(results))
