"""The Kafka wire-protocol edge: a pure codec (framing, headers, record batches,
compression, record mapping) and, above it, the listener that serves Kafka clients from
the same backend seam as the gRPC and HTTP edges."""
