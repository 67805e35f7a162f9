"""The replicated cluster: many topics of partitions, each partition its own Raft group."""
