"""The OpenAPI paths of the verifiable log's routes (``http_tlog``)."""

from __future__ import annotations

from typing import Any

from replog.server.openapi_parts import B64, U32, U64, errors, json_content, path_param, query

__all__ = ["TLOG_SCHEMAS", "tlog_paths"]

_PREFIX = "/v1/topics/{name}/partitions/{p}"
_PARAMS = [
    path_param("name", {"type": "string", "minLength": 1}, "The topic"),
    path_param("p", U32, "The partition (0..partitions-1)"),
]
_PROOF = {"type": "array", "items": B64, "description": "32-byte hashes, lowest first"}

TLOG_SCHEMAS: dict[str, Any] = {
    "InclusionProof": {
        "type": "object",
        "properties": {"offset": U64, "tree_size": U64, "proof": _PROOF},
    },
    "ConsistencyProof": {
        "type": "object",
        "properties": {"old_size": U64, "new_size": U64, "proof": _PROOF},
    },
}


def _required(name: str, description: str) -> dict[str, Any]:
    return {**query(name, description), "required": True}


def _get(summary: str, params: list[dict[str, Any]], ok: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": [*_PARAMS, *params],
            "responses": {"200": ok, **errors(400, 403, 404, 501, 503)},
        }
    }


def tlog_paths() -> dict[str, Any]:
    """The checkpoint, tile and proof routes of each partition."""
    text = {"description": "A C2SP signed note", "content": {"text/plain": {}}}
    tile = {
        "description": "The tile's hashes (32 bytes each); a full tile under the newest "
        "checkpoint is served with Cache-Control: immutable",
        "content": {"application/octet-stream": {}},
    }
    tile_param = path_param(
        "tile", {"type": "string"}, "The C2SP tile path after tile/: <L>/<N>[.p/<W>]"
    )

    def ref(name: str) -> dict[str, Any]:
        return json_content({"$ref": f"#/components/schemas/{name}"})

    return {
        f"{_PREFIX}/checkpoint": _get(
            "The newest signed checkpoint (size: one of the kept ones)",
            [query("size", "The tree size of a kept checkpoint")],
            text,
        ),
        f"{_PREFIX}/tile/{{tile}}": _get("A C2SP tile of the partition's tree", [tile_param], tile),
        f"{_PREFIX}/proof/inclusion": _get(
            "The proof that the record at offset is in the tree of tree_size",
            [_required("offset", "The record"), _required("tree_size", "The tree size")],
            ref("InclusionProof"),
        ),
        f"{_PREFIX}/proof/consistency": _get(
            "The proof that the tree of old_size is a prefix of the tree of new_size",
            [_required("old_size", "The older size"), _required("new_size", "The newer size")],
            ref("ConsistencyProof"),
        ),
    }
