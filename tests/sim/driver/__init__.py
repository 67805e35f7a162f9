"""The real RaftNode driver under deterministic simulation (``python -m tests.sim.driver``)."""
