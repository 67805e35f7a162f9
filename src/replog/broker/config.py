"""Per-topic configuration: the keys, their defaults, parsing and validation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from replog.errors import ConfigError
from replog.storage.codec import FRAME_HEADER_BYTES
from replog.storage.config import SYNC_POLICIES, SyncPolicy

__all__ = ["TOPIC_CONFIG_KEYS", "TopicConfig"]

_DAY_MS = 24 * 3600 * 1000
_MAX = 2**62
#: The smallest segment a topic may roll at.
_MIN_SEGMENT_BYTES = 64


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """How one topic keeps its partitions (each key applies per partition).

    - ``retention_ms``: sealed segments whose newest record is older than this are deleted;
      -1 keeps records forever (the default: a log deletes nothing unless asked to).
    - ``retention_bytes``: the oldest sealed segments are deleted while the partition would
      still hold at least this many bytes without them; -1 = no size limit.
    - ``segment_bytes``: a segment rolls once its store file reaches this size.
    - ``segment_ms``: a segment rolls once its first record is this old (so time retention
      also works on quiet partitions); -1 = never by age. Default 7 days, as Kafka.
    - ``max_record_bytes``: the largest record a produce may append.
    - ``sync``: the durability policy (``always``, ``interval``, ``never``).
    - ``key_index``: keep each key's latest offset per partition (``true``/``false``), for
      per-key conditional appends (``expected_key_offset``); about 28 bytes of memory per
      distinct key per partition, so it is off unless asked for.
    """

    retention_ms: int = -1
    retention_bytes: int = -1
    segment_bytes: int = 64 * 1024 * 1024
    segment_ms: int = 7 * _DAY_MS
    max_record_bytes: int = 1024 * 1024
    sync: SyncPolicy = "always"
    key_index: bool = False

    def __post_init__(self) -> None:
        _check_limit("retention_ms", self.retention_ms)
        _check_limit("retention_bytes", self.retention_bytes)
        _check_limit("segment_ms", self.segment_ms)
        _check_range("segment_bytes", self.segment_bytes, _MIN_SEGMENT_BYTES, 2**40)
        _check_range("max_record_bytes", self.max_record_bytes, 1, 2**31)
        if self.max_record_bytes + FRAME_HEADER_BYTES > self.segment_bytes:
            raise ConfigError(
                f"max_record_bytes ({self.max_record_bytes}) plus the {FRAME_HEADER_BYTES}-byte "
                f"frame header must fit in segment_bytes ({self.segment_bytes})"
            )
        if self.sync not in SYNC_POLICIES:
            raise ConfigError(f"sync must be one of {', '.join(SYNC_POLICIES)}, got {self.sync!r}")
        if not isinstance(self.key_index, bool):
            raise ConfigError(f"key_index must be true or false, got {self.key_index!r}")

    def with_values(self, values: Mapping[str, object]) -> TopicConfig:
        """This configuration with ``values`` set (strings as given on a command line, or
        ints). Keys may use Kafka's dots (``retention.ms``). Raises ConfigError naming the
        first unknown key or bad value; nothing changes then."""
        changes: dict[str, object] = {}
        for raw_key, raw in values.items():
            key = normalize_key(raw_key)
            changes[key] = _parse(key, raw)
        try:
            return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
        except TypeError as exc:  # cannot happen: keys were checked
            raise ConfigError(str(exc)) from exc

    def as_strings(self) -> dict[str, str]:
        """Every key with its value as a string, in key order (what describe shows)."""
        return {key: _text(getattr(self, key)) for key in TOPIC_CONFIG_KEYS}

    def overrides(self, base: TopicConfig) -> dict[str, str]:
        """The keys whose value differs from ``base``, as strings."""
        return {
            key: _text(getattr(self, key))
            for key in TOPIC_CONFIG_KEYS
            if getattr(self, key) != getattr(base, key)
        }


#: Every topic configuration key, in the order describe shows them.
TOPIC_CONFIG_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TopicConfig))


def normalize_key(key: object) -> str:
    """The configuration key ``key`` names (``retention.ms`` is ``retention_ms``); ConfigError
    for a key that is not one."""
    if not isinstance(key, str):
        raise ConfigError(f"a topic config key must be a string, got {type(key).__name__}")
    name = key.strip().replace(".", "_").replace("-", "_")
    if name not in TOPIC_CONFIG_KEYS:
        raise ConfigError(
            f"unknown topic config key {key!r}; the keys are {', '.join(TOPIC_CONFIG_KEYS)}"
        )
    return name


def check_keys(keys: Sequence[object]) -> list[str]:
    """The normalized keys, or ConfigError naming the first that is not a key."""
    return [normalize_key(key) for key in keys]


def _text(value: object) -> str:
    """A configuration value as text (booleans as ``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse(key: str, raw: object) -> object:
    if key == "key_index":
        if isinstance(raw, bool):
            return raw
        text = raw.strip().lower() if isinstance(raw, str) else None
        if text not in ("true", "false"):
            raise ConfigError(f"key_index must be true or false, got {raw!r}")
        return text == "true"
    if key == "sync":
        value = raw.strip() if isinstance(raw, str) else raw
        if value not in SYNC_POLICIES:
            raise ConfigError(f"sync must be one of {', '.join(SYNC_POLICIES)}, got {raw!r}")
        return value
    if isinstance(raw, bool):
        raise ConfigError(f"{key} must be an integer, got {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if text.lstrip("-").isdigit() and text.count("-") <= 1 and text.isascii():
            return int(text)
    raise ConfigError(f"{key} must be an integer, got {raw!r}")


def _check_limit(name: str, value: object) -> None:
    """-1 (no limit) or 1.._MAX."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {type(value).__name__}")
    if value != -1 and not 1 <= value <= _MAX:
        raise ConfigError(f"{name} must be -1 (no limit) or between 1 and {_MAX}, got {value}")


def _check_range(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
