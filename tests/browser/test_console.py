"""The web console in a real Chromium against a real server (no ACL): create a topic, produce
from the form, find the record by key, tail live, watch a group's lag fall, escape markup."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from replog import Client, Consumer
from tests.browser.conftest import POLL_MS
from tests.integration.conftest import ThreadedServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

TIMEOUT_MS = 5000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    running = ThreadedServer(tmp_path_factory.mktemp("browser")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: ThreadedServer) -> Iterator[Client]:
    with Client(server.grpc_address) as opened:
        yield opened


@pytest.fixture
def page(browser: Browser, server: ThreadedServer) -> Iterator[Page]:
    context = browser.new_context(
        base_url=f"http://{server.http_address}", viewport={"width": 1200, "height": 800}
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(f"globalThis.replogPollMs = {POLL_MS};")
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert errors == [], errors  # no script error on any page a test visited


def test_a_topic_created_in_the_console_exists_with_its_partitions(
    page: Page, client: Client
) -> None:
    page.goto("/ui/#/topics")
    form = page.locator("#create-topic")
    form.locator("[name=name]").fill("web-orders")
    form.locator("[name=partitions]").fill("3")
    form.locator("[name=retention_ms]").fill("3600000")
    form.get_by_role("button", name="Create topic").click()
    form.get_by_role("link", name="web-orders").wait_for()
    described = client.describe_topic("web-orders")
    assert len(described.partitions) == 3 and described.config["retention_ms"] == "3600000"
    row = page.locator("#topics tr", has_text="web-orders")
    row.wait_for()
    assert "1 h" in row.inner_text()  # its retention, as the list shows it


def test_a_keyed_record_produced_from_the_form_is_found_by_its_key(
    page: Page, client: Client
) -> None:
    client.create_topic("keyed", partitions=4)
    for i in range(30):  # other keys around it
        client.produce(b"noise %d" % i, key=b"other-%d" % i, topic="keyed")
    page.goto("/ui/#/produce")
    form = page.locator("#produce")
    form.locator("[name=topic]").fill("keyed")
    form.locator("[name=key]").fill("customer-42")
    form.locator("[name=value]").fill('{"paid": 12, "currency": "EUR"}')
    form.locator("[name=header-key]").fill("source")
    form.locator("[name=header-value]").fill("web")
    form.get_by_role("button", name="Produce").click()
    result = page.locator("#produce-result")
    result.get_by_text("appended to partition").wait_for()
    partition = int(result.inner_text().split("partition ")[1].split()[0])
    page.goto(f"/ui/#/topics/keyed/{partition}")
    browse = page.locator("#browse")
    browse.locator("[name=mode]").select_option("key")
    browse.locator("[name=at]").fill("customer-42")
    browse.get_by_role("button", name="Go").click()
    page.locator("#browse-info").get_by_text("1 records with key").wait_for()
    rows = page.locator("#records tbody tr")
    assert rows.count() == 1
    assert "customer-42" in rows.first.locator("td.key").inner_text()
    assert "source=web" in rows.first.locator("td.headers").inner_text()
    browse.locator("[name=format]").select_option("json")
    value = rows.first.locator("td.value").inner_text()
    assert json.loads(value) == {"paid": 12, "currency": "EUR"} and "\n" in value  # pretty


def test_the_browser_finds_the_first_record_at_or_after_a_time(page: Page, client: Client) -> None:
    client.create_topic("timed")
    for i in range(40):
        client.produce(b"event %d" % i, topic="timed")
    stamps = [client.consume(o, topic="timed").timestamp_ms for o in range(40)]
    when = stamps[23]
    expected = next(o for o, ms in enumerate(stamps) if ms >= when)
    page.goto("/ui/#/topics/timed/0")
    page.locator("#records tbody tr").first.wait_for()
    browse = page.locator("#browse")
    browse.locator("[name=mode]").select_option("time")
    browse.locator("[name=at]").fill(str(when))
    browse.get_by_role("button", name="Go").click()
    page.locator("#browse-info").get_by_text(f"offset {expected}").wait_for()
    assert page.locator("#records tbody tr").first.get_attribute("data-offset") == str(expected)


def test_a_record_holding_markup_shows_as_text_and_never_runs(page: Page, client: Client) -> None:
    client.create_topic("markup")
    evil = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2"><b>bold</b>'
    client.produce(evil.encode(), key=b"<i>k</i>", topic="markup")
    page.goto("/ui/#/topics/markup/0?offset=0")
    cell = page.locator("#records tbody tr td.value")
    cell.wait_for()
    assert cell.inner_text() == evil
    assert page.locator("#records tbody td.key").inner_text() == "<i>k</i>"
    assert page.locator("#records img, #records b, #records i, #records script").count() == 0
    assert page.evaluate("window.pwned") is None
    page.locator("#browse [name=format]").select_option("hex")
    assert cell.inner_text().startswith("3c 73 63 72")  # "<scr"


def test_live_tail_shows_a_record_produced_while_the_page_tails(page: Page, client: Client) -> None:
    client.create_topic("tailed")
    client.produce(b"before", topic="tailed")
    page.goto("/ui/#/topics/tailed/0")
    page.locator("#records tbody tr").first.wait_for()  # the page opened on the last records
    page.locator("#tail").click()
    page.locator("#browse-info").get_by_text("tailing from offset 1").wait_for()
    client.produce(b"arrived while tailing", topic="tailed")
    row = page.locator("#records tbody tr", has_text="arrived while tailing")
    row.wait_for()
    assert row.get_attribute("data-offset") == "1"
    assert page.locator("#records tbody tr").count() == 1  # the tail starts at the end
    page.locator("#tail").click()  # stops: the page's stream is closed
    assert page.locator("#tail").inner_text() == "Live tail"


def test_a_groups_lag_falls_on_the_page_after_the_group_commits(
    page: Page, client: Client, server: ThreadedServer
) -> None:
    client.create_topic("lagged")
    for i in range(10):
        client.produce(b"job %d" % i, topic="lagged")
    consumer = Consumer(
        Client(server.grpc_address),
        "billing",
        ["lagged"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
    )
    try:
        assert [consumer.poll(5.0) is not None for _ in range(4)] == [True] * 4
        consumer.commit()
        page.goto("/ui/#/groups")
        page.get_by_role("link", name="billing").click()
        total = page.locator("#total-lag")
        page.locator("#total-lag", has_text="6").wait_for()
        assert page.locator("#offsets tr", has_text="lagged").locator("td.lag").inner_text() == "6"
        page.locator("#group-chart svg polyline").wait_for(
            state="attached"
        )  # the lag chart, from 2 polls
        assert page.locator("#group-members", has_text="lagged/0").count() == 1
        assert [consumer.poll(5.0) is not None for _ in range(6)] == [True] * 6
        consumer.commit()
        page.locator("#total-lag", has_text="0").wait_for()
        assert total.inner_text() == "0"
    finally:
        consumer.close()
        consumer.client.close()
    page.locator("#group-members", has_text="No members.").wait_for()  # it left the group
    reset = page.locator("#reset-offsets")
    reset.locator("[name=topic]").fill("lagged")
    reset.locator("[name=to]").select_option("earliest")
    reset.get_by_role("button", name="Reset offsets").click()
    reset.get_by_text("reset 1 partitions").wait_for()
    page.locator("#total-lag", has_text="10").wait_for()
    assert client.fetch_offsets("billing")[("lagged", 0)] == 0


def test_the_cluster_page_shows_this_node_as_a_ready_leader(
    page: Page, server: ThreadedServer
) -> None:
    page.goto("/ui")  # redirected to /ui/, which opens on the cluster
    member = page.locator("#members tbody tr").first
    member.wait_for()
    text = member.inner_text()
    assert server.grpc_address in text and "leader" in text and "unreachable" not in text
    assert "ready" in page.locator("#cluster-summary").inner_text()
    assert page.locator("#whoami").inner_text() == "no client identity · ACL off"


def test_the_topics_list_asks_for_summaries_and_describes_one_topic_on_demand(
    page: Page, client: Client
) -> None:
    client.create_topic("wide", partitions=12)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url.split("/", 3)[3]))
    page.goto("/ui/#/topics")
    page.locator("#topics tr", has_text="wide").wait_for()
    assert "v1/topics?view=summary" in asked and "v1/topics" not in asked
    assert not any(a.startswith("v1/topics/") for a in asked)
    page.get_by_role("link", name="wide", exact=True).click()
    page.locator("#partitions tbody tr").nth(11).wait_for()
    assert "v1/topics/wide" in asked
