"""The shard formats, in one place (docs/ARCHITECTURE.md, "Shard format"); the ground floor: nothing of ours.

- `names`: the member names of a sample (layer 1, layers k >= 2, matting), of a shard's files, of latent
  shards and of `l2i sample`'s per-sample files;
- `index`: the per-shard parquet's schema and rows, the LAION columns carried into a sample's json;
- `mask8`: the 8-bit mask encoding (m in [0, 1] <-> uint8) and the binary 0/255 masks;
- `decode`: a sample's members -> arrays (every layer, any depth);
- `tar`: the deterministic WebDataset tar: writing, reading a stream, member offsets.
"""
