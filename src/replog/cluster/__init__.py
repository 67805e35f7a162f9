"""The node side of replication: a Raft group's driver, its transport and log, the cluster node.

``raft_node.RaftNode`` drives the pure core (``replog.raft``) with asyncio; ``transport``
carries its messages over gRPC; ``log_store.ReplogLogStore`` is the Raft log on a replog
``Log``; ``cluster_node.ClusterNode`` hosts it in a server process (membership, snapshots,
leadership transfer, the Raft and Cluster gRPC services); ``backend.RaftBackend`` is the
``LogBackend`` the server's edges call. It imports nothing of ``replog.server``.
"""
