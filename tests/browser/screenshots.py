"""Screenshots of the web console for the docs: ``python -m tests.browser.screenshots``.

Starts a single node in a temporary directory, fills it with demo topics, records and a
lagging consumer group, keeps producing while it takes a 1200x800 PNG of each page into
``docs/img/`` (``--out`` elsewhere), and stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
from pathlib import Path
from typing import Any

from replog import Client
from tests.browser.conftest import close, launch, missing
from tests.integration.conftest import ThreadedServer

PAGES = {
    "console-cluster.png": "#/cluster",
    "console-topics.png": "#/topics",
    "console-topic.png": "#/topics/orders",
    "console-browser.png": "#/topics/orders/2",
    "console-groups.png": "#/groups/billing",
    "console-produce.png": "#/produce?topic=orders",
}


def _fill(client: Client) -> None:
    client.create_topic("orders", partitions=6, config={"retention_ms": "604800000"})
    client.create_topic("payments", partitions=3)
    client.create_topic("audit", partitions=1, config={"retention_bytes": "1073741824"})
    rng = random.Random(16)
    for i in range(400):
        customer = f"customer-{rng.randrange(40)}"
        value = {"order": 1000 + i, "customer": customer, "total": round(rng.uniform(5, 400), 2)}
        client.produce(json.dumps(value).encode(), key=customer.encode(), topic="orders")
        if i % 3 == 0:
            client.produce(b"payment %d accepted" % i, key=customer.encode(), topic="payments")
    committed = {("orders", p): 30 + 7 * p for p in range(6)}
    client.commit_offsets("billing", committed)


def _keep_producing(server: ThreadedServer, stop: threading.Event) -> None:
    rng = random.Random(7)
    with Client(server.grpc_address) as client:
        while not stop.wait(0.02):
            customer = f"customer-{rng.randrange(40)}"
            value = json.dumps({"customer": customer, "total": round(rng.uniform(5, 400), 2)})
            client.produce(value.encode(), key=customer.encode(), topic="orders")


def _shoot(page: Any, out: Path, name: str, where: str) -> None:
    page.goto("/ui/" + where)
    if name == "console-browser.png":
        page.locator("#records tbody tr").first.wait_for()
        page.locator("#browse [name=format]").select_option("json")
    elif name == "console-produce.png":
        page.locator("#produce [name=key]").fill("customer-7")
        page.locator("#produce [name=value]").fill('{"order": 5012, "total": 42.5}')
        page.locator("#produce [name=header-key]").fill("source")
        page.locator("#produce [name=header-value]").fill("web")
        page.get_by_role("button", name="Produce").click()
        page.locator("#produce-result a").wait_for()
    page.wait_for_timeout(4000)  # several polls: the sparklines and the lag chart fill in
    page.screenshot(path=str(out / name))
    print(f"wrote {out / name} ({(out / name).stat().st_size // 1024} KiB)")


def main() -> None:
    """Take the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    reason = missing()
    if reason is not None:
        raise SystemExit(reason)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data:
        server = ThreadedServer(Path(data)).start()
        stop = threading.Event()
        producer = threading.Thread(target=_keep_producing, args=(server, stop), daemon=True)
        try:
            with Client(server.grpc_address) as client:
                _fill(client)
            producer.start()
            playwright, browser = launch()
            try:
                context = browser.new_context(
                    base_url=f"http://{server.http_address}",
                    viewport={"width": 1200, "height": 800},
                )
                context.add_init_script("globalThis.replogPollMs = 500;")
                page = context.new_page()
                for name, where in PAGES.items():
                    _shoot(page, args.out, name, where)
                context.close()
            finally:
                close(playwright, browser)
        finally:
            stop.set()
            if producer.is_alive():
                producer.join(10)
            server.stop()


if __name__ == "__main__":
    main()
