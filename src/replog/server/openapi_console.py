"""The web console's part of the OpenAPI document: ``/v1/whoami`` and the ``/ui`` files."""

from __future__ import annotations

from typing import Any

from replog.server.openapi_parts import errors, json_content

__all__ = ["console_paths"]

_ACTIONS: dict[str, Any] = {
    "produce": {"type": "boolean"},
    "consume": {"type": "boolean"},
    "admin": {"type": "boolean"},
}
_WHOAMI = {
    "type": "object",
    "required": ["identity", "acl", "may"],
    "properties": {
        "identity": {
            "type": "string",
            "nullable": True,
            "description": "The subject of the client certificate (null: none)",
        },
        "acl": {"type": "boolean", "description": "Whether an ACL decides (else all is allowed)"},
        "may": {
            "type": "object",
            "description": "Each action on some topic; cluster_admin: admin on the cluster "
            "itself (membership, leadership transfer)",
            "properties": {**_ACTIONS, "cluster_admin": {"type": "boolean"}},
        },
        "topic": {
            "type": "object",
            "description": "With ?topic=: the actions on that topic",
            "properties": {"name": {"type": "string"}, **_ACTIONS},
        },
        "group": {
            "type": "object",
            "description": "With ?group=: the actions on that consumer group",
            "properties": {
                "name": {"type": "string"},
                "consume": {"type": "boolean"},
                "admin": {"type": "boolean"},
            },
        },
    },
}


def _text_query(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": description,
    }


def console_paths() -> dict[str, Any]:
    """``GET /v1/whoami`` and the console's files."""
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "/v1/whoami": {
            "get": {
                "summary": "Who the caller is and what it may do (any identity; 401 without "
                "one when an ACL is on). The console shows admin actions only when allowed; "
                "the routes themselves check every call",
                "parameters": [
                    _text_query("topic", "Also answer for this topic"),
                    _text_query("group", "Also answer for this consumer group"),
                ],
                "responses": {"200": json_content(_WHOAMI), **errors(400, 401)},
            }
        },
        "/ui": {
            "get": {
                "summary": "Redirects to the web console, /ui/",
                "responses": {"301": {"description": "Location: /ui/"}},
            }
        },
        "/ui/": {
            "get": {
                "summary": "The web console (HTML; its script and style sheet from /ui/)",
                "responses": {"200": {"description": "The page", "content": html}},
            }
        },
        "/ui/{file}": {
            "get": {
                "summary": "A file of the web console: console.js, console.css, index.html",
                "parameters": [
                    {"name": "file", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "The file (JavaScript, CSS or HTML)"},
                    "304": {"description": "Not modified (If-None-Match)"},
                    **errors(404),
                },
            }
        },
    }
