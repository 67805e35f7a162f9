"""The web console's routes over plain HTTP (issue 16): its files, /v1/whoami, text produces.

One server for the module; each test uses its own topic. The console in a real browser is
tested in tests/browser.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replog.server.http_ui import CONSOLE_FILES, console_file
from tests.integration.conftest import ThreadedServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    running = ThreadedServer(tmp_path_factory.mktemp("console")).start()
    yield running
    running.stop()


def call(
    server: ThreadedServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    host, port = server.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        payload = response.read()
        got = {k.lower(): v for k, v in response.getheaders()}
        if "json" in got.get("content-type", ""):
            return response.status, got, json.loads(payload)
        return response.status, got, payload
    finally:
        conn.close()


def create(server: ThreadedServer, name: str, partitions: int = 1) -> None:
    body = json.dumps({"name": name, "partitions": partitions}).encode()
    assert call(server, "POST", "/v1/topics", body)[0] == 201


def records(server: ThreadedServer, topic: str, partition: int = 0) -> list[dict[str, Any]]:
    status, _, body = call(server, "GET", f"/v1/topics/{topic}/partitions/{partition}/records")
    assert status == 200
    return list(body["records"])


# -- the console's files ------------------------------------------------------------------


def test_ui_redirects_to_the_page_which_is_served_with_its_type_cache_and_csp(
    server: ThreadedServer,
) -> None:
    status, headers, _ = call(server, "GET", "/ui")
    assert (status, headers["location"]) == (301, "/ui/")
    for path, name in [("/ui/", "index.html"), *((f"/ui/{n}", n) for n in CONSOLE_FILES)]:
        status, headers, body = call(server, "GET", path)
        assert status == 200, path
        assert headers["content-type"] == CONSOLE_FILES[name]
        assert headers["cache-control"] == "no-cache" and headers["etag"]
        assert headers["x-content-type-options"] == "nosniff"
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert body == console_file(name).body
    assert call(server, "GET", "/ui/")[2].startswith(b"<!doctype html>")


def test_a_browser_holding_the_file_revalidates_it_with_its_etag(server: ThreadedServer) -> None:
    _, headers, _ = call(server, "GET", "/ui/console.js")
    status, again, body = call(
        server, "GET", "/ui/console.js", None, {"If-None-Match": headers["etag"]}
    )
    assert (status, body, again["etag"]) == (304, b"", headers["etag"])
    status, _, body = call(server, "GET", "/ui/console.js", None, {"If-None-Match": '"other"'})
    assert status == 200 and body


@pytest.mark.parametrize(
    "path", ["/ui/nope.js", "/ui/sub/console.js", "/ui/..%2Fopenapi.json", "/ui/console.js.map"]
)
def test_a_path_the_console_does_not_have_is_a_json_404(server: ThreadedServer, path: str) -> None:
    status, _, body = call(server, "GET", path)
    assert status == 404 and body["error"]["code"] in ("NOT_FOUND", "HTTP_ERROR"), body


def test_the_console_is_package_data_small_and_loads_nothing_from_elsewhere() -> None:
    total = sum(len(console_file(name).body) for name in CONSOLE_FILES)
    assert total < 200_000  # the first page, all of it
    page = console_file("index.html").body.decode()
    script = console_file("console.js").body.decode()
    style = console_file("console.css").body.decode()
    for text in (page, script, style):
        assert not re.search(r"(src|href)=\"(https?:)?//", text) and "@import" not in text
        assert "url(http" not in text and "fonts.googleapis" not in text
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    assert "eval(" not in script and "<script>" not in page  # CSP: no inline script
    ui = Path(__file__).resolve().parents[2] / "src" / "replog" / "server" / "ui"
    assert sorted(p.name for p in ui.iterdir()) == sorted(CONSOLE_FILES)


def test_openapi_describes_whoami_the_console_and_text_produces(server: ThreadedServer) -> None:
    _, _, doc = call(server, "GET", "/openapi.json")
    assert {"/v1/whoami", "/ui", "/ui/", "/ui/{file}"} <= set(doc["paths"])
    produce = doc["paths"]["/v1/topics/{name}/records"]["post"]
    assert {p["name"] for p in produce["parameters"]} >= {"encoding", "key"}
    assert "text/plain" in produce["requestBody"]["content"]


# -- who am I -----------------------------------------------------------------------------


def test_whoami_without_an_acl_allows_everything(server: ThreadedServer) -> None:
    status, headers, body = call(server, "GET", "/v1/whoami?topic=orders&group=g1")
    assert status == 200 and headers["cache-control"] == "no-store"
    everything = {"produce": True, "consume": True, "admin": True}
    assert body == {
        "identity": None,
        "acl": False,
        "may": {**everything, "cluster_admin": True},
        "topic": {"name": "orders", **everything},
        "group": {"name": "g1", "consume": True, "admin": True},
    }


@pytest.mark.parametrize("query", ["topic=a*b", "topic=a%2Fb", "group=a%2Fb"])
def test_whoami_refuses_a_name_no_topic_or_group_can_have(
    server: ThreadedServer, query: str
) -> None:
    status, _, body = call(server, "GET", f"/v1/whoami?{query}")
    assert (status, body["error"]["code"]) == (400, "INVALID_ARGUMENT")


# -- produce a text value -----------------------------------------------------------------


def test_curl_d_hello_with_encoding_utf8_appends_the_body_as_the_value(
    server: ThreadedServer,
) -> None:
    create(server, "text-in", 2)
    form = {"Content-Type": "application/x-www-form-urlencoded"}  # what curl -d sends
    path = "/v1/topics/text-in/partitions/1/records?encoding=utf8"
    status, _, body = call(server, "POST", path, "héllo {not json".encode(), form)
    assert (status, body) == (200, {"offset": 0, "partition": 1})
    status, _, body = call(
        server, "POST", "/v1/topics/text-in/records?encoding=UTF-8&key=alice", b"hi"
    )
    assert status == 200
    got = records(server, "text-in", body["partition"])[-1]
    assert base64.b64decode(got["value"]) == b"hi" and base64.b64decode(got["key"]) == b"alice"
    got = records(server, "text-in", 1)[0]
    assert base64.b64decode(got["value"]).decode() == "héllo {not json" and "key" not in got
    status, _, body = call(server, "POST", "/v1/records?encoding=utf8", b"")
    assert status == 200 and "offset" in body  # an empty value is a record


def test_a_text_plain_body_is_the_value_and_json_stays_the_default(server: ThreadedServer) -> None:
    create(server, "text-plain")
    path = "/v1/topics/text-plain/partitions/0/records"
    plain = {"Content-Type": "text/plain; charset=utf-8"}
    assert call(server, "POST", path, b'{"record": {"value": "aGk="}}', plain)[0] == 200
    json_body = json.dumps({"record": {"value": base64.b64encode(b"hi").decode()}}).encode()
    assert call(server, "POST", path, json_body, {"Content-Type": "application/json"})[0] == 200
    assert call(server, "POST", path + "?encoding=base64", json_body, plain)[0] == 200
    values = [base64.b64decode(r["value"]) for r in records(server, "text-plain")]
    assert values == [b'{"record": {"value": "aGk="}}', b"hi", b"hi"]


@pytest.mark.parametrize(
    ("query", "body", "headers", "says"),
    [
        ("?encoding=latin1", b"x", {}, "encoding must be base64"),
        ("?encoding=", b"x", {}, "encoding must be base64"),
        ("?encoding=utf8", b"\xff\xfe", {}, "not UTF-8"),
        ("", b"x", {"Content-Type": "text/plain; charset=latin-1"}, "must be UTF-8"),
        ("?key=k", b'{"record": {"value": ""}}', {}, "?key= goes with encoding=utf8"),
        ("?encoding=utf8&key=" + "k" * 5000, b"x", {}, "at most 4096"),
    ],
)
def test_a_bad_encoding_is_a_400_that_appends_nothing(
    server: ThreadedServer, query: str, body: bytes, headers: dict[str, str], says: str
) -> None:
    create(server, f"bad-enc-{len(query)}-{len(headers)}-{len(body)}")
    topic = f"bad-enc-{len(query)}-{len(headers)}-{len(body)}"
    for path in (f"/v1/topics/{topic}/records", f"/v1/topics/{topic}/partitions/0/records"):
        status, _, answer = call(server, "POST", path + query, body, headers)
        assert (status, answer["error"]["code"]) == (400, "INVALID_ARGUMENT")
        assert says in answer["error"]["message"]
    assert records(server, topic) == []


def test_a_batch_takes_only_a_json_body(server: ThreadedServer) -> None:
    create(server, "text-batch")
    for path in (
        "/v1/topics/text-batch/records:batch",
        "/v1/topics/text-batch/partitions/0/records:batch",
    ):
        status, _, body = call(server, "POST", path + "?encoding=utf8", b"a")
        assert (status, body["error"]["code"]) == (400, "INVALID_ARGUMENT")
        assert "a batch is a JSON body" in body["error"]["message"]
    assert records(server, "text-batch") == []


# -- the topic list without partition rows ------------------------------------------------


def test_the_summary_view_lists_topics_without_their_partitions(server: ThreadedServer) -> None:
    create(server, "summed", 3)
    for p in range(3):
        path = f"/v1/topics/summed/partitions/{p}/records?encoding=utf8"
        for _ in range(p + 1):
            assert call(server, "POST", path, b"x")[0] == 200
    status, _, body = call(server, "GET", "/v1/topics?view=summary")
    assert status == 200
    summed = next(t for t in body["topics"] if t["name"] == "summed")
    assert (summed["partition_count"], summed["next_offset_sum"]) == (3, 6)
    assert summed["size_bytes"] > 0 and "partitions" not in summed
    _, _, full = call(server, "GET", "/v1/topics?view=full")
    assert len(next(t for t in full["topics"] if t["name"] == "summed")["partitions"]) == 3
    status, _, body = call(server, "GET", "/v1/topics?view=rows")
    assert (status, body["error"]["code"]) == (400, "INVALID_ARGUMENT")
