"""What every network edge shares, below both ``server`` and ``cluster``.

The backend seam the gRPC and HTTP edges call (``backend``), where errors become gRPC and HTTP
statuses (``status``), and protobuf bytes on the hot paths (``wire``). The cluster's own gRPC
services (Raft, Cluster, forwarded produce) use them too, so they live in neither room.
"""
