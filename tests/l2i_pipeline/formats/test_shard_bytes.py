"""The shard bytes stay the same: sha256 of every tar and parquet that `l2i synthesize` (local runner) writes
for the demo's inputs (its photos and bad inputs, as one raw shard) and for peeled, matted shape scenes,
against digests recorded before the shard format moved into l2i_pipeline/formats/ (issue 22, item 3); the
Ray runner (slow) writes the same bytes.

Regenerate (only for a deliberate format change): `python tests/l2i_pipeline/formats/test_shard_bytes.py`.
"""
from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2]))  # tests/, for rawshards when run as a script
from rawshards import make_rows, write_raw_shard, write_scene_shard  # noqa: E402

from l2i_pipeline.engine.synthesize import synthesize  # noqa: E402
from stages.config import load_config  # noqa: E402

FIXTURE = Path(__file__).parents[2] / "fixtures" / "format_shards.json"
VERSIONS = ("opencv-python-headless", "pillow", "fpng", "pyarrow", "numpy", "pymatting", "onnxruntime")
CASES = {
    "demo": ["resolution=128", "output_shard_size=8"],  # the demo's default backends (u2netp, telea)
    "peel_matting": ["resolution=128", "output_shard_size=3", "saliency.backend=classical", "layers.count=3",
                     "layers.dilate_kernel=5", "layers.alpha=matting"],
}


def demo_raw(d: Path) -> Path:
    """The demo's served files (l2i_pipeline/demo/inputs.py) as one raw shard, as if downloaded."""
    from l2i_pipeline.demo.inputs import bad_inputs, photos

    files = photos() + bad_inputs()
    rows = make_rows(len(files))
    for row, f in zip(rows, files):
        row.update(image=f.data, caption=f.description, url=f"http://127.0.0.1/{f.filename}")
    write_raw_shard(d, "00000", rows)
    return d


def digests(case: str, work: Path, runner: str = "local") -> dict[str, str]:
    raw = demo_raw(work / "raw") if case == "demo" else write_scene_shard(work / "raw", size=128)
    synthesize(raw, work / "l2i", load_config(None, CASES[case]), runner=runner)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((work / "l2i").glob("*"))
            if p.suffix in (".tar", ".parquet")}


def _versions() -> dict[str, str]:
    return {p: metadata.version(p) for p in VERSIONS}


@pytest.mark.parametrize("case", sorted(CASES))
def test_synthesize_writes_the_recorded_bytes(case, tmp_path):
    golden = json.loads(FIXTURE.read_text())
    if _versions() != golden["versions"]:
        pytest.skip(f"digests recorded with {golden['versions']}, these are {_versions()}")
    assert golden["cases"][case]["sets"] == CASES[case]
    assert digests(case, tmp_path) == golden["cases"][case]["files"]


@pytest.mark.slow
def test_the_ray_runner_writes_the_recorded_bytes(tmp_path):
    import ray

    golden = json.loads(FIXTURE.read_text())
    if _versions() != golden["versions"]:
        pytest.skip(f"digests recorded with {golden['versions']}, these are {_versions()}")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        got = {case: digests(case, tmp_path / case, runner="ray") for case in sorted(CASES)}
    finally:
        ray.shutdown()
    assert got == {case: golden["cases"][case]["files"] for case in sorted(CASES)}


if __name__ == "__main__":
    import tempfile

    cases = {}
    for case in sorted(CASES):
        with tempfile.TemporaryDirectory() as tmp:
            cases[case] = {"sets": CASES[case], "files": digests(case, Path(tmp))}
    FIXTURE.write_text(json.dumps({"about": __doc__.split("\n\n")[0].replace("\n", " "), "versions": _versions(),
                                   "cases": cases}, indent=1, sort_keys=True) + "\n")
    print(FIXTURE.read_text())
