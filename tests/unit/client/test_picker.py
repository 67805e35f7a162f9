"""The client's picker: leader for produces, followers in turn for reads, failover, refresh."""

from __future__ import annotations

import pytest

from replog.client.picker import Member, Picker, parse_bootstrap
from replog.errors import InvalidArgumentError

VIEW = [Member("n1", "a:1", is_leader=True), Member("n2", "b:2"), Member("n3", "c:3")]


def test_bootstrap_addresses_come_comma_separated_or_as_a_list() -> None:
    assert parse_bootstrap("a:1, b:2,a:1") == ["a:1", "b:2"]
    assert parse_bootstrap(["a:1", "b:2"]) == ["a:1", "b:2"]
    with pytest.raises(InvalidArgumentError):
        parse_bootstrap("a:1,nope")


def test_produces_go_to_the_leader_and_reads_alternate_between_followers() -> None:
    picker = Picker(["b:2"])
    picker.update(VIEW, 0.0, asked="b:2")
    assert {picker.for_produce() for _ in range(5)} == {"a:1"}
    reads = [picker.for_consume() for _ in range(4)]
    assert sorted(reads) == ["b:2", "b:2", "c:3", "c:3"]


def test_a_failed_leader_is_avoided_even_when_a_stale_view_still_names_it() -> None:
    picker = Picker(["a:1"])
    picker.update(VIEW, 0.0, asked="a:1")
    picker.mark_failed("a:1", 1.0)
    assert picker.leader is None and picker.begin_refresh(1.0)
    picker.update(VIEW, 1.1, asked="b:2")  # a follower has not noticed yet
    assert picker.for_produce() in ("b:2", "c:3")
    picker.update(VIEW, 10.0, asked="b:2")  # long after: tried again
    assert picker.for_produce() == "a:1"


def test_a_leader_hint_redirects_produces() -> None:
    picker = Picker(["b:2"])
    picker.update(VIEW, 0.0, asked="b:2")
    picker.on_unavailable("a:1", 1.0, leader_hint="c:3")
    assert picker.for_produce() == "c:3"


def test_a_single_server_keeps_the_address_the_client_was_given() -> None:
    picker = Picker(["localhost:7400"])
    picker.update([Member("s", "0.0.0.0:7400", is_leader=True)], 0.0, asked="localhost:7400")
    assert picker.for_produce() == picker.for_consume() == "localhost:7400"


def test_refresh_is_due_once_per_period_and_candidates_put_failed_members_last() -> None:
    picker = Picker(["a:1", "z:9"], refresh_s=10)
    assert picker.begin_refresh(0.0) and not picker.begin_refresh(0.0)
    picker.update(VIEW, 0.0, asked="a:1")
    assert not picker.begin_refresh(5.0) and picker.begin_refresh(10.0)
    picker.refresh_failed(10.0, retry_after_s=1.0)
    assert not picker.begin_refresh(10.5) and picker.begin_refresh(11.0)
    picker.mark_failed("a:1", 11.0)
    assert picker.refresh_candidates() == ["b:2", "c:3", "z:9", "a:1"]


def test_reads_wait_for_this_clients_own_last_write_unless_told_otherwise() -> None:
    picker = Picker(["127.0.0.1:1"])
    assert picker.read_floor(None) == 0  # nothing written yet: no wait
    picker.note_written(41)
    picker.note_written(7)  # an older acknowledgement never lowers the floor
    assert picker.read_floor(None) == 41
    assert picker.read_floor(0) == 0  # the caller opts out
    assert picker.read_floor(99) == 99
