"""The L2I data stream: shard index, test split, deterministic resumable per-rank streams."""
