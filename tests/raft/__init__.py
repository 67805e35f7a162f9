"""Tests of the pure Raft core (replog.raft)."""
