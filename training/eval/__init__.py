"""`l2i eval`: the paper's section V-B metrics (clean-FID, CLIP score, mask IOU) beside its Tables I-III and V.

One job per module: `weights` (what each metric needs and where it is published), `sources` (sample dirs,
L2I and raw shards as image streams), `cache` (per-image feature cache that makes a run resumable),
`inception` / `clip_score` / `iou` (the extractors and metrics), `fid` (statistics and the distance),
`report` (metrics.json / .md / .png, `compare`), `run` (`evaluate`, `dataset_only`) and `cli`.
"""
