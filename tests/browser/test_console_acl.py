"""The console over mutual TLS with an ACL, in a real Chromium holding a client certificate:
an admin sees the admin actions, a consume-only identity sees none of them, and the admin
routes answer that identity's browser 403 whatever the page shows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import POLL_MS
from tests.integration.conftest import ThreadedServer
from tests.integration.test_console_acl import console_pki, secure_settings
from tests.integration.test_security import Pki, https

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ADMIN_FORMS = ("#create-topic", "#delete-topic", "#transfer-leader", "#reset-offsets")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return console_pki(tmp_path_factory.mktemp("browser-pki"))


@pytest.fixture(scope="module")
def secure(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    server = ThreadedServer(tmp_path_factory.mktemp("browser-tls"), **secure_settings(pki))
    server.start()
    ops = pki.https("ops")
    assert https(server, ops, "POST", "/v1/topics", {"name": "orders"})[0] == 201
    commit = {"offsets": [{"topic": "orders", "partition": 0, "offset": 0}]}
    assert https(server, ops, "POST", "/v1/groups/billing/offsets", commit)[0] == 204
    yield server
    server.stop()


def open_as(browser: Browser, pki: Pki, server: ThreadedServer, who: str) -> Any:
    origin = f"https://{server.http_address}"
    context = browser.new_context(
        base_url=origin,
        ignore_https_errors=True,  # the node's certificate is from the test's own CA
        client_certificates=[
            {"origin": origin, "certPath": pki.cert(who), "keyPath": pki.key(who)}
        ],
    )
    context.set_default_timeout(5000)
    context.add_init_script(f"globalThis.replogPollMs = {POLL_MS};")
    return context


def visit_every_page(page: Page) -> dict[str, int]:
    """How many of each admin form the pages show, once each page has loaded (and, for a
    topic or group page, once its per-object check answered)."""
    page.goto("/ui/#/cluster")
    page.locator("#members tbody tr").first.wait_for()
    seen = {"#transfer-leader": page.locator("#transfer-leader").count()}
    page.goto("/ui/#/topics")
    page.locator("#topics tr", has_text="orders").wait_for()
    seen["#create-topic"] = page.locator("#create-topic").count()
    page.goto("/ui/#/topics/orders")
    page.locator("#topic-admin[data-checked]").wait_for(state="attached")
    seen["#delete-topic"] = page.locator("#delete-topic").count()
    page.goto("/ui/#/groups/billing")
    page.locator("#group-admin[data-checked]").wait_for(state="attached")
    seen["#reset-offsets"] = page.locator("#reset-offsets").count()
    return seen


def test_an_admin_sees_the_admin_actions(
    browser: Browser, pki: Pki, secure: ThreadedServer
) -> None:
    context = open_as(browser, pki, secure, "ops")
    try:
        page = context.new_page()
        assert visit_every_page(page) == dict.fromkeys(ADMIN_FORMS, 1)
        assert page.locator("#whoami").inner_text() == "signed in as ops · admin"
    finally:
        context.close()


_ADMIN_CALLS = """async () => {
  const calls = [
    ["POST", "/v1/topics", {name: "sneaky"}],
    ["DELETE", "/v1/topics/orders", null],
    ["POST", "/v1/cluster:transfer-leader", {}],
    ["DELETE", "/v1/groups/billing", null],
  ];
  const out = [];
  for (const [method, path, body] of calls) {
    const init = {method, headers: {"Content-Type": "application/json"}};
    if (body !== null) init.body = JSON.stringify(body);
    const response = await fetch(path, init);
    out.push([response.status, (await response.json()).error.code]);
  }
  return out;
}"""


def test_a_consume_only_identity_sees_no_admin_action_and_its_calls_are_refused(
    browser: Browser, pki: Pki, secure: ThreadedServer
) -> None:
    context = open_as(browser, pki, secure, "reader")
    try:
        page = context.new_page()
        assert visit_every_page(page) == dict.fromkeys(ADMIN_FORMS, 0)
        assert page.locator("#whoami").inner_text() == "signed in as reader · no admin rights"
        assert page.locator("#offsets tr", has_text="orders").count() == 1  # it reads, though
        refused = page.evaluate(_ADMIN_CALLS)  # what a hand-made request from its page gets
        assert refused == [[403, "PERMISSION_DENIED"]] * 4
    finally:
        context.close()
    _, body = https(secure, pki.https("ops"), "GET", "/v1/topics")
    names = {t["name"] for t in body["topics"]}
    assert "orders" in names and "sneaky" not in names  # nothing changed
    assert https(secure, pki.https("ops"), "GET", "/v1/groups/billing")[0] == 200
