"""Scale benchmark: `l2i synthesize` on Ray with CPU backends over growing inputs, local disk vs s3://.

Prints, per input size and store: driver peak RSS (the driver must stay flat as the input grows: it
holds one small record per shard, never samples), throughput, and Ray object-store spill. Each run is a
fresh driver process (`python -m l2i_pipeline.cli synthesize`), so its peak RSS is its own. The S3 store
is moto's server on 127.0.0.1.

    python bench/bench_scale.py --sizes 250,1000,4000 --resolution 64 --stores local,s3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from rawshards import make_rows, write_raw_shard  # noqa: E402

DRIVER = r"""
import json, resource, sys, time
from stages.config import load_config
from l2i_pipeline.engine.synthesize import synthesize
raw, out, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
t0 = time.time()
summary = synthesize(raw, out, load_config(None, overrides), runner="ray", num_cpus=2)
import ray
spilled = 0
try:
    from ray._private.internal_api import memory_summary
    for line in memory_summary(stats_only=True).splitlines():
        if line.strip().startswith("Spilled"):
            spilled = int(line.split()[1])
except Exception:
    pass
print(json.dumps({"seconds": time.time() - t0, "samples": summary["samples"], "shards": summary["shards_written"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "spilled_mib": spilled}))
"""


def make_input(d: Path, n: int, per_shard: int, size: int) -> None:
    for shard in range((n + per_shard - 1) // per_shard):
        rows = make_rows(min(per_shard, n - shard * per_shard), shard=shard)
        for r in rows:  # small images keep the benchmark about the driver, not the stages
            from rawshards import jpeg_bytes, scene

            r["image"] = jpeg_bytes(scene(hash(r["key"]) % 997, size=size))
        write_raw_shard(d, f"{shard:05d}", rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="250,1000,4000")
    ap.add_argument("--stores", default="local,s3")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--raw-shard-size", type=int, default=250)
    ap.add_argument("--output-shard-size", type=int, default=50)
    args = ap.parse_args()
    overrides = [f"resolution={args.resolution}", f"output_shard_size={args.output_shard_size}",
                 "decode.min_size=32", "saliency.backend=classical", "saliency.batch_size=32", "inpaint.batch_size=32"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}
    server = None
    if "s3" in args.stores:
        from s3server import S3Server

        server = S3Server()
        env.update(server.env)
        os.environ.update(server.env)
    print(f"{'store':<6} {'inputs':>7} {'shards':>7} {'seconds':>8} {'img/s':>7} {'driver peak RSS MiB':>20} "
          f"{'spilled MiB':>12}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in [int(x) for x in args.sizes.split(",")]:
                raw = Path(tmp) / f"raw{n}"
                make_input(raw, n, args.raw_shard_size, size=max(args.resolution + 16, 80))
                for store in args.stores.split(","):
                    out = str(Path(tmp) / f"out{n}") if store == "local" else f"s3://{server.new_bucket()}/l2i"
                    proc = subprocess.run([sys.executable, "-c", DRIVER, str(raw), out, *overrides], env=env,
                                          capture_output=True, text=True)
                    if proc.returncode != 0:
                        print(proc.stderr[-3000:])
                        raise SystemExit(f"run failed: {store} {n}")
                    r = json.loads(proc.stdout.strip().splitlines()[-1])
                    rate = r["samples"] / r["seconds"]
                    print(f"{store:<6} {n:>7} {r['shards']:>7} {r['seconds']:>8.1f} {rate:>7.1f} "
                          f"{r['peak_rss_mb']:>20.0f} {r['spilled_mib']:>12}", flush=True)
    finally:
        if server:
            server.stop()



if __name__ == "__main__":
    main()
