"""The web console (issue 16): static files served at ``/ui/`` on the HTTP port.

The console is three files shipped as package data (``server/ui/``): an HTML page, one
JavaScript module and one style sheet, with no build step and nothing fetched from
elsewhere. The page talks to the same HTTP API (same TLS, same ACL) from the browser. The
files hold no data, so serving them needs no permission; every call the page makes is
checked as any other. ``GET /ui`` redirects to ``/ui/``; a file not in the console is 404.
Every answer carries a strict Content-Security-Policy (only this origin's script, style and
connections; no inline script), and an ETag so a browser revalidates cheaply.

``GET /v1/whoami`` tells the page (or anyone) who the caller is and what it may do, so the
console shows admin actions only to identities granted ``admin``; the admin routes refuse
everyone else whatever a page shows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web

from replog.errors import InvalidArgumentError, NotFoundError
from replog.security.acl import ANY_TOPIC, CLUSTER, Action
from replog.server.acl_objects import group_object, topic_object
from replog.server.auth import Access, http_subject, request_access

__all__ = ["CONSOLE_FILES", "CSP", "add_ui_routes", "console_file", "whoami"]

#: The console's files and their media types; nothing else under ``/ui/`` is served.
CONSOLE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}

#: Only this origin's files and API; no inline script or style, no plugins, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The file names carry no version: a browser keeps a copy but asks (ETag) before use.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class ConsoleFile:
    """One file of the console: its bytes, media type and entity tag."""

    body: bytes
    content_type: str
    etag: str


_CACHE: dict[str, ConsoleFile] = {}


def console_file(name: str) -> ConsoleFile:
    """The console file ``name`` (read once from the package); NotFoundError for any other."""
    cached = _CACHE.get(name)
    if cached is not None:
        return cached
    content_type = CONSOLE_FILES.get(name)
    if content_type is None:
        raise NotFoundError(f"the console has no file {name[:100]!r}")
    body = resources.files("replog.server").joinpath("ui", name).read_bytes()
    found = ConsoleFile(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    _CACHE[name] = found
    return found


def add_ui_routes(router: web.UrlDispatcher) -> None:
    """Add ``/ui`` (a redirect), ``/ui/`` (the page) and ``/ui/{file}``."""
    router.add_get("/ui", _redirect)
    router.add_get("/ui/", _index)
    router.add_get("/ui/{file}", _file)
    router.add_get("/v1/whoami", _whoami)


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/ui/", headers=_HEADERS)


async def _index(request: web.Request) -> web.Response:
    return _serve(request, "index.html")


async def _file(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["file"])


def _serve(request: web.Request, name: str) -> web.Response:
    found = console_file(name)
    headers = {**_HEADERS, "ETag": found.etag}
    if found.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=found.body, headers={**headers, "Content-Type": found.content_type})


# -- who the caller is ----------------------------------------------------------------------


def whoami(access: Access | None, subject: str | None, topic: str, group: str) -> dict[str, Any]:
    """The answer of ``GET /v1/whoami``: the identity, whether an ACL is on, what it may do
    on some topic (``may``; ``cluster_admin``: admin on the cluster itself), and, when
    ``topic`` or ``group`` is given, on that topic or group. Without an ACL all is allowed."""

    def may(action: Action, obj: str) -> bool:
        return access is None or access.may(action, obj)

    acts = (Action.PRODUCE, Action.CONSUME, Action.ADMIN)
    answer: dict[str, Any] = {
        "identity": access.subject if access is not None else subject,
        "acl": access is not None,
        "may": {a.value: may(a, ANY_TOPIC) for a in acts},
    }
    answer["may"]["cluster_admin"] = may(Action.ADMIN, CLUSTER)
    if topic:
        obj = topic_object(topic)
        if obj == CLUSTER:
            raise InvalidArgumentError(f"{topic[:100]!r} is not a valid topic name")
        answer["topic"] = {"name": topic} | {a.value: may(a, obj) for a in acts}
    if group:
        obj = group_object(group)
        if obj == CLUSTER:
            raise InvalidArgumentError(f"{group[:100]!r} is not a valid group name")
        answer["group"] = {"name": group} | {a.value: may(a, obj) for a in acts[1:]}
    return answer


async def _whoami(request: web.Request) -> web.Response:
    topic, group = request.query.get("topic", ""), request.query.get("group", "")
    answer = whoami(request_access(request), http_subject(request), topic, group)
    return web.json_response(answer, headers={"Cache-Control": "no-store"})
