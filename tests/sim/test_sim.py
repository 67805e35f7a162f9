"""The deterministic simulation as a test: many seeds, invariants after every step, liveness
after healing, and mutation checks proving the simulator catches broken rules.

A failure message names the seed; reproduce it with ``python -m tests.sim --seed N``.

CI runs the first half of each configuration's seeds (2,300 in all, under a minute on one
core); ``REPLOG_SIM_FULL=1`` runs all 4,600, and ``make sim-soak`` runs those and then the
long ranges of ``python -m tests.sim --soak``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest

from replog.raft import Entry, EntryKind, core, leader
from replog.raft.membership import ConfigTracker, config_of
from replog.raft.state.log import RaftLog
from tests.sim.__main__ import main
from tests.sim.plan import make_plan
from tests.sim.runner import run_seed, shrink_failure

# (nodes, profile, seeds): 4,600 seeds in total, about a minute and a half on one core.
FULL_BATCHES = [
    (3, "default", range(0, 2000)),
    (5, "default", range(0, 800)),
    (3, "churn", range(0, 800)),
    (5, "churn", range(0, 400)),
    (3, "membership", range(0, 400)),
    (5, "membership", range(0, 200)),
]
FULL = os.environ.get("REPLOG_SIM_FULL", "") not in ("", "0")
HALF_BATCHES = [(n, p, range(s.start, s.start + len(s) // 2)) for n, p, s in FULL_BATCHES]
BATCHES = FULL_BATCHES if FULL else HALF_BATCHES


@pytest.mark.parametrize(
    ("nodes", "profile", "seeds"),
    BATCHES,
    ids=[f"{n}nodes-{p}-{s.start}-{s.stop - 1}" for n, p, s in BATCHES],
)
def test_every_seed_keeps_raft_safety_and_recovers_after_faults_heal(
    nodes: int, profile: str, seeds: range
) -> None:
    failures = []
    for seed in seeds:
        result = run_seed(seed, nodes, profile=profile)
        if not result.ok:
            failures.append(
                f"seed {seed}: {result.violation}\n  reproduce: python -m tests.sim --seed {seed} "
                f"--nodes {nodes} --profile {profile}"
            )
    assert not failures, "\n".join(failures[:5])


def test_a_run_is_a_pure_function_of_its_seed() -> None:
    first = run_seed(7, 3, verbose=True)
    second = run_seed(7, 3, verbose=True)
    assert first.trace == second.trace
    assert (first.committed, first.steps) == (second.committed, second.steps)
    assert first.committed > 0


def test_plans_differ_between_seeds_and_include_every_fault_kind() -> None:
    kinds = {e.kind for seed in range(50) for e in make_plan(seed, 3, 800)[1]}
    assert kinds >= {"crash", "restart", "partition", "one-way", "heal", "propose", "transfer"}
    assert kinds >= {"add-learner", "promote", "remove", "remove-leader", "compact"}
    assert make_plan(1, 3, 800) != make_plan(2, 3, 800)


def _first_violation(nodes: int, profile: str, seeds: range) -> int | None:
    for seed in seeds:
        if not run_seed(seed, nodes, profile=profile).ok:
            return seed
    return None


def test_mutation_committing_entries_of_older_terms_by_counting_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Raft §5.4.2, Figure 8: with the rule broken, a committed entry gets overwritten.
    monkeypatch.setattr(leader, "_UNSAFE_COMMIT_OLD_TERMS", True)
    seed = _first_violation(3, "churn", range(0, 400))
    assert seed is not None, "the simulator missed the Figure 8 bug"


def test_mutation_committing_part_of_a_proposal_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 11 defect 2: a proposal (a produce batch) commits whole or not at all.
    monkeypatch.setattr(leader, "_UNSAFE_COMMIT_PART_OF_PROPOSAL", True)
    seed = _first_violation(3, "default", range(0, 200))
    assert seed is not None, "the simulator missed a proposal committed in part"


def test_mutation_keeping_an_incomplete_proposal_at_election_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A new leader that commits an older term's proposal whose last entry it lacks.
    monkeypatch.setattr(RaftLog, "continued_run_start", lambda self, index: index + 1)
    seed = _first_violation(3, "churn", range(0, 400))
    assert seed is not None, "the simulator missed an incomplete proposal committed"


def _mutant_config_keeps_replaced(self: ConfigTracker, entries: Sequence[Entry]) -> bool:
    """ConfigTracker.observe_append that forgets to drop the configuration entries an
    append replaces (a follower keeps acting on a lost leader's change)."""
    if not entries:
        return False
    before = self.latest
    for entry in entries:
        if entry.kind == EntryKind.CONFIG:
            self.pending.append((entry.index, config_of(entry, self.latest)))
    return self.latest != before


def test_mutation_keeping_a_replaced_configuration_entry_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two membership changes in flight across a leader change: the targeted profile.
    monkeypatch.setattr(ConfigTracker, "observe_append", _mutant_config_keeps_replaced)
    seed = _first_violation(3, "membership", range(0, 200))
    assert seed is not None, "the simulator missed a replaced configuration kept in effect"


def test_mutation_granting_votes_without_the_log_check_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Raft §5.4.1: the election restriction is what gives Leader Completeness.
    monkeypatch.setattr(core, "_UNSAFE_VOTE_WITHOUT_LOG_CHECK", True)
    seed = _first_violation(3, "default", range(0, 200))
    assert seed is not None, "the simulator missed votes granted to stale logs"


def test_a_failing_run_shrinks_to_a_short_replayable_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(core, "_UNSAFE_VOTE_WITHOUT_LOG_CHECK", True)
    seed = _first_violation(3, "default", range(0, 200))
    assert seed is not None
    result = run_seed(seed, 3)
    events = shrink_failure(result)
    assert len(events) < len(result.events)
    assert not run_seed(seed, 3, events).ok


def test_command_line_reports_ok_and_failing_seeds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--seed", "3"]) == 0
    assert "seed 3: ok" in capsys.readouterr().out
    monkeypatch.setattr(core, "_UNSAFE_VOTE_WITHOUT_LOG_CHECK", True)
    seed = _first_violation(3, "default", range(0, 200))
    assert main(["--seed", str(seed)]) == 1
    out = capsys.readouterr().out
    assert f"python -m tests.sim --seed {seed}" in out
    assert "shrunk to" in out
