"""The verifiable log over HTTP: a reader checks the signed checkpoint, the tiles and the proofs
a single node serves against nothing but the verifier key."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from replog.client import Client
from replog.storage import Log
from replog.tlog.checkpoint import open_checkpoint
from replog.tlog.hashing import leaf_hash
from replog.tlog.keyfile import write_key_files
from replog.tlog.proof import verify_consistency, verify_inclusion
from replog.tlog.tiles import Tile, verify_tiles
from tests.integration.conftest import ThreadedServer, wait_until

BASE = "/v1/topics/default/partitions/0"


def get(server: ThreadedServer, path: str) -> tuple[int, dict[str, str], bytes]:
    host, port = server.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def get_json(server: ThreadedServer, path: str) -> Any:
    status, _, body = get(server, path)
    assert status == 200, body
    return json.loads(body)


def hashes(doc: Any) -> list[bytes]:
    return [base64.b64decode(h) for h in doc["proof"]]


def test_a_reader_verifies_checkpoints_tiles_and_proofs_with_the_verifier_key(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    keys = write_key_files(tmp_path / "keys", "n1")
    server = server_factory(
        tmp_path / "data", server_id="n1", signing_key=str(keys.private), checkpoint_interval_ms=20
    )
    checkpoints = []
    with Client(server.grpc_address) as client:
        for count in (600, 5):
            client.produce_batch([f"record {i}".encode() for i in range(count)])
            total = 600 if count == 600 else 605
            head = f"n1/default/0\n{total}\n".encode()
            wait_until(
                lambda head=head: get(server, BASE + "/checkpoint")[2].startswith(head),
                10,
                f"the checkpoint of {total}",
            )
            status, headers, note = get(server, BASE + "/checkpoint")
            assert headers["Content-Type"].startswith("text/plain")
            checkpoints.append(open_checkpoint(note, keys.verifier, origin="n1/default/0"))
    old, new = checkpoints

    def read_tile(tile: Tile) -> bytes:
        status, _, data = get(server, f"{BASE}/{tile.path()}")
        assert status == 200, data
        return data

    verify_tiles(new.size, new.root, read_tile)
    status, headers, _ = get(server, f"{BASE}/tile/0/000")
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    status, headers, _ = get(server, f"{BASE}/tile/0/002.p/93")
    assert status == 200 and headers["Cache-Control"] == "no-cache"

    leaf = read_tile(Tile(0, 1))[32 * 44 : 32 * 45]  # offset 300
    doc = get_json(server, f"{BASE}/proof/inclusion?offset=300&tree_size={new.size}")
    verify_inclusion(leaf, 300, new.size, hashes(doc), new.root)
    doc = get_json(server, f"{BASE}/proof/consistency?old_size={old.size}&new_size={new.size}")
    verify_consistency(old.size, new.size, old.root, new.root, hashes(doc))
    status, _, old_note = get(server, f"{BASE}/checkpoint?size=600")
    assert open_checkpoint(old_note, keys.verifier) == old
    assert get(server, f"{BASE}/proof/inclusion?offset=1&tree_size=999999")[0] == 400
    assert get(server, f"{BASE}/tile/0/bad")[0] == 400
    assert get(server, f"{BASE}/checkpoint?size=7")[0] == 404
    server.stop()
    with Log(tmp_path / "data" / "topics" / "default" / "0") as log_:
        assert leaf == leaf_hash(log_.read_payloads(300, max_records=1)[0])


def test_without_a_signing_key_the_checkpoint_is_not_found_but_tiles_are_served(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    server = server_factory(tmp_path / "data", tlog_tiles=True)
    with Client(server.grpc_address) as client:
        client.produce_batch([b"x"] * 10)
    status, _, body = get(server, f"{BASE}/checkpoint")
    assert status == 404 and b"NOT_FOUND" in body
    status, headers, data = get(server, f"{BASE}/tile/0/000.p/10")
    assert status == 200 and len(data) == 320 and headers["Cache-Control"] == "no-cache"
