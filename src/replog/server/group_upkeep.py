"""Compaction of ``__consumer_offsets``: the task that copies each led partition's live
state forward (``GroupShard.compact``) four times per retention period of the topic, so
what time retention deletes is always dead."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from replog.errors import ReplogError

if TYPE_CHECKING:
    from replog.server.group_service import GroupService

__all__ = ["COMPACTIONS_PER_RETENTION", "maintain"]

_log = logging.getLogger("replog.groups")

COMPACTIONS_PER_RETENTION = 4
_MAX_NAP_S = 60.0


async def maintain(service: GroupService) -> None:
    """Run until cancelled: take over and compact each offsets partition this node leads
    when its last copy is a quarter of the topic's retention old. Failures are logged and
    retried at the next round; nothing but cancellation ends it."""
    nap_s = 1.0
    while True:
        await asyncio.sleep(nap_s)
        try:
            retention_s = service.offsets_retention_now() / 1000
            interval_s = retention_s / COMPACTIONS_PER_RETENTION
            nap_s = min(interval_s / 4, _MAX_NAP_S)
            shards = service.led_shards()
        except asyncio.CancelledError:
            raise
        except ReplogError as exc:  # no topic yet (groups unused), no leader: try later
            _log.debug("offsets compaction: %s", exc)
            continue
        except Exception:  # a bug: say so loudly, and go on trying
            _log.exception("offsets compaction: unexpected error")
            continue
        for shard in shards:
            try:
                await shard.ready()
                if time.monotonic() - shard.compacted_at >= interval_s:
                    await shard.compact()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning("offsets partition %d: compaction failed: %s", shard.partition, exc)
