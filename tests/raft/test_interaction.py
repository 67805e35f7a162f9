"""Runs every ``testdata/*.txt`` scenario; ``REPLOG_REWRITE=1`` regenerates expected output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.raft.interaction import run_file

TESTDATA = Path(__file__).parent / "testdata"
FILES = sorted(TESTDATA.glob("*.txt"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_interaction_scenario_matches_its_recorded_story(path: Path) -> None:
    rewrite = os.environ.get("REPLOG_REWRITE") == "1"
    mismatches, text = run_file(path, rewrite)
    if rewrite:
        path.write_text(text)
        return
    if mismatches:
        block, got = mismatches[0]
        diff = "\n".join(["expected:", *block.expected, "got:", *got])
        pytest.fail(f"{path.name}: {block.command!r} differs ({len(mismatches)} blocks)\n{diff}")


def test_there_is_a_scenario_for_every_required_behaviour() -> None:
    names = {p.stem for p in FILES}
    required = {
        "election",
        "prevote",
        "checkquorum",
        "replication",
        "figure8",
        "membership",
        "transfer",
        "snapshot",
    }
    assert required <= names
