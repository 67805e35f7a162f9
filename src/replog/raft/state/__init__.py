"""Node-local state of the Raft core: the log (unstable tail over stable storage)."""
