"""Deterministic simulation of a replog Raft cluster (run ``python -m tests.sim --help``)."""
