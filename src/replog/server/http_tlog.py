"""The verifiable log's HTTP routes (issue 15): a partition's signed checkpoint, its C2SP
tiles and proofs, for any reader to check the log without trusting the server.

``GET /v1/topics/{name}/partitions/{p}/checkpoint`` is the newest signed checkpoint (a C2SP
signed note, ``text/plain``; ``?size=N`` one of the kept older ones); ``GET
.../tile/{L}/{N}[.p/{W}]`` a tile's bytes (``application/octet-stream``; a full tile under the
newest checkpoint never changes, so it is served ``immutable``); ``GET .../proof/inclusion
?offset=&tree_size=`` and ``.../proof/consistency?old_size=&new_size=`` the proofs as base64
hashes, lowest first. Each needs consume permission on the topic. On a cluster each node
answers from its own replica (``tlog_source``: only leaves under its commit index; a node
without a replica answers 503 naming one).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

from aiohttp import web

from replog.errors import InvalidArgumentError, NotFoundError, UnsupportedError
from replog.security.acl import Action
from replog.server.acl_objects import topic_object
from replog.server.auth import request_access
from replog.server.tlog_source import TlogPartition, TlogSource
from replog.tlog.proof import consistency_proof, inclusion_proof
from replog.tlog.tile_files import TileDirectory
from replog.tlog.tiles import TILE_HEIGHT, TILE_WIDTH, parse_tile_path

__all__ = ["TLOG_KEY", "TlogState", "add_tlog_routes", "check_held"]

_PREFIX = "/v1/topics/{name}/partitions/{p}"
_IMMUTABLE = "public, max-age=31536000, immutable"
_MAX_U63 = 2**63 - 1


@dataclass
class TlogState:
    """What the routes read: the partitions' trees and checkpoints (None: not served)."""

    source: TlogSource | None = None


TLOG_KEY = web.AppKey("replog_tlog", TlogState)


def add_tlog_routes(router: web.UrlDispatcher) -> None:
    """Add the checkpoint, tile and proof routes."""
    router.add_get(f"{_PREFIX}/checkpoint", _checkpoint)
    router.add_get(f"{_PREFIX}/tile/{{tile:.+}}", _tile)
    router.add_get(f"{_PREFIX}/proof/inclusion", _inclusion)
    router.add_get(f"{_PREFIX}/proof/consistency", _consistency)


def _partition(request: web.Request) -> TlogPartition:
    topic = request.match_info["name"]
    text = request.match_info["p"]
    if not text.isdigit() or not text.isascii() or len(text) > 10:
        raise InvalidArgumentError(f"partition {text!r} is not a number")
    access = request_access(request)
    if access is not None:
        access.require(Action.CONSUME, topic_object(topic))
    state = request.app.get(TLOG_KEY)
    if state is None or state.source is None:
        raise UnsupportedError("this server does not serve the verifiable log")
    return state.source.partition(topic, int(text))


def _int_query(request: web.Request, name: str, *, required: bool = True) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        if required:
            raise InvalidArgumentError(f"the query parameter {name} is required")
        return None
    if not text.isdigit() or not text.isascii() or int(text) > _MAX_U63:
        raise InvalidArgumentError(f"{name} must be a non-negative number, not {text!r}")
    return int(text)


async def _checkpoint(request: web.Request) -> web.Response:
    part = _partition(request)
    size = _int_query(request, "size", required=False)
    store = part.checkpoints
    if store is None:
        raise NotFoundError("this server signs no checkpoints (no --signing-key)")
    try:
        note = await asyncio.to_thread(store.read, size)
    except InvalidArgumentError as exc:
        raise NotFoundError(str(exc)) from None
    return web.Response(text=note, content_type="text/plain", headers={"Cache-Control": "no-cache"})


async def _tile(request: web.Request) -> web.Response:
    part = _partition(request)
    tile = parse_tile_path("tile/" + request.match_info["tile"])
    needs = (tile.index * TILE_WIDTH + tile.width) << (TILE_HEIGHT * tile.level)  # leaves
    await part.hold(needs)

    def read(tiles: TileDirectory) -> bytes:
        if part.replica is not None:  # a single node's read_tile says what it lacks
            check_held(part, tiles, needs)
        return tiles.read_tile(tile)

    data = await asyncio.to_thread(part.tree.read, read)
    signed = None if part.checkpoints is None else part.checkpoints.latest_size()
    last_leaf = ((tile.index + 1) * TILE_WIDTH << (TILE_HEIGHT * tile.level)) - 1
    immutable = not tile.partial and signed is not None and last_leaf < signed
    cache = _IMMUTABLE if immutable else "no-cache"
    return web.Response(
        body=data, content_type="application/octet-stream", headers={"Cache-Control": cache}
    )


def _hashes(proof: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in proof]


async def _inclusion(request: web.Request) -> web.Response:
    part = _partition(request)
    offset = _int_query(request, "offset")
    size = _int_query(request, "tree_size")
    assert offset is not None and size is not None
    await part.hold(size)

    def prove(tiles: TileDirectory) -> list[bytes]:
        check_held(part, tiles, size)
        return inclusion_proof(tiles, offset, size)

    proof = await asyncio.to_thread(part.tree.read, prove)
    return web.json_response({"offset": offset, "tree_size": size, "proof": _hashes(proof)})


async def _consistency(request: web.Request) -> web.Response:
    part = _partition(request)
    old = _int_query(request, "old_size")
    new = _int_query(request, "new_size")
    assert old is not None and new is not None
    await part.hold(new)

    def prove(tiles: TileDirectory) -> list[bytes]:
        check_held(part, tiles, new)
        return consistency_proof(tiles, old, new)

    proof = await asyncio.to_thread(part.tree.read, prove)
    return web.json_response({"old_size": old, "new_size": new, "proof": _hashes(proof)})


def check_held(part: TlogPartition, tiles: TileDirectory, size: int) -> None:
    """InvalidArgumentError unless ``size`` leaves may be proven from ``tiles`` (run with
    appends held off, after ``part.hold``)."""
    held = part.committed(tiles.size)
    if size > held:
        raise InvalidArgumentError(f"the tree holds {held} leaves, not {size}")
