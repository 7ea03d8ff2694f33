"""`l2i sample`: prompts x seeds -> DIR/<id>/ layered files and DIR/samples.parquet, resumable.

A sample's id is fixed by its prompt (index and hash) and seed, and its `meta.json` is written last:
a rerun skips every sample whose marker exists. `DIR/sample.json` records the model's fingerprint and
the settings; a rerun with another model or other settings is refused rather than mixing samples.
Runners: `local` (one process, batches of --batch-size) and `ray` (an actor pool, one pipeline per
actor, GPUs when the cluster has them) for the tens of thousands of samples evaluation needs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from l2i_pipeline.core.errors import ConfigError, InputError, NotFound
from l2i_pipeline.formats.names import SAMPLES_INDEX
from training.export.layers import DEFAULT_FORMATS, FORMATS
from training.fingerprint import dir_fingerprint

log = logging.getLogger(__name__)


@dataclass
class SampleSettings:
    """What changes a sample's pixels or files; fixed for an output dir."""

    steps: int = 50
    guidance: float = 7.5
    formats: tuple[str, ...] = DEFAULT_FORMATS
    precision: str = "fp32"  # fp32 | bf16 | fp16

    def check(self) -> SampleSettings:
        if self.steps < 1:
            raise ConfigError(f"--steps must be >= 1, got {self.steps}")
        if self.guidance < 1:
            raise ConfigError(f"--guidance must be >= 1 (1 = no classifier-free guidance), got {self.guidance}")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ConfigError(f"--format takes a comma list of {', '.join(FORMATS)}; got {','.join(self.formats)}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"--precision must be fp32, bf16 or fp16, got {self.precision}")
        return self


@dataclass
class Item:
    id: str
    prompt: str
    prompt_index: int
    seed: int


def read_prompts(prompt: str | None = None, prompts_file: str | None = None) -> list[str]:
    """--prompt TEXT, or --prompts FILE (one per line, blank lines ignored; or a parquet with `prompt`/`caption`)."""
    if prompt is not None:
        if not prompt.strip():
            raise InputError("--prompt is empty; give a text (the empty prompt is the unconditional branch)")
        return [prompt.strip()]
    path = Path(prompts_file or "")
    if not path.is_file():
        raise NotFound(f"prompts file not found: {path}")
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        col = next((c for c in ("prompt", "caption", "TEXT") if c in table.column_names), None)
        if col is None:
            raise InputError(f"{path} has no prompt, caption or TEXT column")
        prompts = [str(p).strip() for p in table.column(col).to_pylist() if p is not None and str(p).strip()]
    else:
        prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise InputError(f"no prompts in {path}")
    return prompts


def plan(prompts: list[str], n: int, seed: int) -> list[Item]:
    """n samples per prompt, seeds seed..seed+n-1 (the same seeds for every prompt)."""
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    items = []
    for i, p in enumerate(prompts):
        h = hashlib.sha1(p.encode()).hexdigest()[:8]
        items += [Item(f"{i:06d}_{h}_s{seed + j}", p, i, seed + j) for j in range(n)]
    return items


def open_output(out: Path, model_dir: str | Path, settings: SampleSettings) -> dict:
    """Create or check DIR/sample.json: the same model and settings as the samples already there."""
    record = {"model": str(Path(model_dir).resolve()), "fingerprint": dir_fingerprint(model_dir),
              "settings": json.loads(json.dumps(dataclasses.asdict(settings)))}
    marker = out / "sample.json"
    if marker.is_file():
        old = json.loads(marker.read_text())
        if old.get("fingerprint") != record["fingerprint"]:
            raise InputError(f"{out} holds samples of another model ({old.get('model')}, fingerprint "
                             f"{old.get('fingerprint')}); use a new --out")
        diff = sorted(k for k in record["settings"] if old["settings"].get(k) != record["settings"][k])
        if diff:
            raise ConfigError(f"{out} was sampled with other settings ({', '.join(diff)}: "
                              + ", ".join(f"{old['settings'].get(k)} != {record['settings'][k]}" for k in diff)
                              + "); use a new --out")
        return old
    out.mkdir(parents=True, exist_ok=True)
    if any(p.is_dir() and (p / "meta.json").exists() for p in out.iterdir()):
        raise InputError(f"{out} holds samples without a sample.json; use a new --out")
    tmp = out / ".sample.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(marker)
    return record


def pending(out: Path, items: list[Item]) -> list[Item]:
    return [it for it in items if not (out / it.id / "meta.json").is_file()]


class SampleWorker:
    """Loads the pipeline once; turns a batch of items into files under `out` and returns their meta rows."""

    def __init__(self, model_dir: str, out: str, settings: SampleSettings, device: str | None = None,
                 threads: int = 0):
        import torch

        from training.pipeline import LayeredDiffusionPipeline

        if threads:  # torch intra-op threads of this process (0 = torch's default), like train.cpu_threads
            torch.set_num_threads(threads)

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[settings.precision]
        self.pipe = LayeredDiffusionPipeline.load(model_dir, device=self.device, dtype=dtype)
        self.out, self.settings, self.model_dir = Path(out), settings, str(model_dir)

    def run(self, items: list[Item]) -> list[dict]:
        from training.export.layers import export_files, write_files

        layers = self.pipe([it.prompt for it in items], [it.seed for it in items], steps=self.settings.steps,
                           guidance=self.settings.guidance)
        rows = []
        for it, lay in zip(items, layers):
            d = self.out / it.id
            paths = write_files(export_files(lay, self.settings.formats), d)
            meta = {**dataclasses.asdict(it), "steps": self.settings.steps, "guidance": self.settings.guidance,
                    "precision": self.settings.precision, "model": self.model_dir,
                    "files": sorted(p.name for p in paths)}
            (d / ".meta.json.tmp").write_text(json.dumps(meta))
            (d / ".meta.json.tmp").replace(d / "meta.json")  # the completion marker, last
            rows.append(meta)
        return rows

    def __call__(self, batch: dict) -> dict:
        """Ray Data entry point: columns of Item fields in, the ids written out."""
        items = [Item(*(batch[f.name][i] for f in dataclasses.fields(Item))) for i in range(len(batch["id"]))]
        items = [Item(str(it.id), str(it.prompt), int(it.prompt_index), int(it.seed)) for it in items]
        return {"id": [r["id"] for r in self.run(items)]}


def run_local(model_dir, out: Path, items: list[Item], settings: SampleSettings, batch_size: int,
              device: str | None = None, progress: bool = True, threads: int = 0) -> int:
    from tqdm import tqdm

    if not items:
        return 0
    worker = SampleWorker(str(model_dir), str(out), settings, device, threads)
    done = 0
    with tqdm(total=len(items), unit="sample", disable=not progress) as bar:
        for i in range(0, len(items), batch_size):
            done += len(worker.run(items[i:i + batch_size]))
            bar.update(len(items[i:i + batch_size]))
    return done


def run_ray(model_dir, out: Path, items: list[Item], settings: SampleSettings, batch_size: int, workers: int,
            ray_address: str | None = None, num_cpus: int | None = None, threads: int = 0,
            device: str | None = None) -> int:
    import ray

    from l2i_pipeline.core.gpus import Ask
    from l2i_pipeline.core.rayutil import init_ray, model_pool

    if not items:
        return 0
    init_ray(ray_address, num_cpus)
    _, pool, plan = model_pool([Ask(None, workers or None, device or "auto")])  # one GPU per worker if any
    ds = ray.data.from_items([dataclasses.asdict(it) for it in items],
                             override_num_blocks=max(1, min(len(items), 4 * plan.max_size)))
    args = (str(Path(model_dir).resolve()), str(out), settings, device, threads)
    ds = ds.map_batches(SampleWorker, fn_constructor_args=args, batch_size=batch_size, batch_format="numpy", **pool)
    return sum(1 for _ in ds.iter_rows())


def write_index(out: Path) -> Path:
    """DIR/samples.parquet from every finished sample's meta.json, sorted by id."""
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*/meta.json"))]
    for r in rows:
        r["dir"] = str(out / r["id"])
        r["paths"] = [str(out / r["id"] / f) for f in r.pop("files")]
    schema = pa.schema([("id", pa.string()), ("prompt", pa.string()), ("prompt_index", pa.int64()),
                        ("seed", pa.int64()), ("steps", pa.int64()), ("guidance", pa.float64()),
                        ("precision", pa.string()), ("model", pa.string()), ("dir", pa.string()),
                        ("paths", pa.list_(pa.string()))])
    table = pa.Table.from_pylist(rows, schema=schema)
    tmp = out / f".{SAMPLES_INDEX}.tmp"
    pq.write_table(table, tmp)
    tmp.replace(out / SAMPLES_INDEX)
    return out / SAMPLES_INDEX


def sample(model_dir: str | Path, out_dir: str | Path, prompts: list[str], n: int = 4, seed: int = 0,
           settings: SampleSettings | None = None, batch_size: int = 4, runner: str = "local", workers: int = 0,
           ray_address: str | None = None, num_cpus: int | None = None, device: str | None = None,
           threads: int = 0) -> dict:
    """Sample every (prompt, seed) not yet in `out_dir`; returns counts and the index path. `threads`: torch
    intra-op threads per sampling process (0 = torch's default); it does not change the pixels."""
    settings = (settings or SampleSettings()).check()
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if threads < 0:
        raise ConfigError(f"--threads must be >= 0 (0 = torch's default), got {threads}")
    from training.runstore import fetched

    model = fetched(model_dir)  # a URL: RUN2/pipeline committed by `l2i train ldm --out URL`, fetched once
    if not (model / "model_index.json").is_file():
        raise NotFound(f"not a pipeline dir (no model_index.json): {model} (expected RUN2/pipeline)")
    out = Path(out_dir)
    items = plan(prompts, n, seed)
    open_output(out, model, settings)
    todo = pending(out, items)
    log.info("%d samples planned, %d already done, %d to sample", len(items), len(items) - len(todo), len(todo))
    if runner == "ray":
        made = run_ray(model, out, todo, settings, batch_size, workers, ray_address, num_cpus, threads, device)
    else:
        made = run_local(model, out, todo, settings, batch_size, device, threads=threads)
    index = write_index(out)
    return {"planned": len(items), "skipped": len(items) - len(todo), "sampled": made, "index": str(index)}
