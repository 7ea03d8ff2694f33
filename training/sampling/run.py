"""`l2i sample`: prompts x seeds -> DIR/<id>/ layered files and DIR/samples.parquet, resumable.

A sample's id is fixed by its prompt (index and hash) and seed, and its `meta.json` is written last:
a rerun skips every sample whose marker exists. `DIR/sample.json` records the model's fingerprint and
the settings; a rerun with another model or other settings is refused rather than mixing samples.
Runners: `local` (one process, batches of --batch-size) and `ray` (an actor pool, one pipeline per
actor, GPUs when the cluster has them) for the tens of thousands of samples evaluation needs.
DIR is a local path or a storage URL: every file is one whole-object put through the storage layer, and
the job holds DIR's output lock. A URL model is fetched by each worker into its own cache.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from l2i_pipeline.core.errors import ConfigError, InputError, NotFound
from l2i_pipeline.core.lock import output_lock
from l2i_pipeline.core.storage import Store, open_store, parse_storage_options
from l2i_pipeline.formats.names import SAMPLES_INDEX
from training.base.fingerprint import dir_fingerprint
from training.export.layers import DEFAULT_FORMATS, FORMATS

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


def _model_name(model: str | Path) -> str:
    return str(model) if "://" in str(model) else str(Path(model).resolve())


def open_output(out: Store, model: str | Path, local_model: Path, settings: SampleSettings) -> dict:
    """Create or check DIR/sample.json: the same model and settings as the samples already there."""
    record = {"model": _model_name(model), "fingerprint": dir_fingerprint(local_model),
              "settings": json.loads(json.dumps(dataclasses.asdict(settings)))}
    if out.exists("sample.json"):
        old = json.loads(out.get("sample.json"))
        if old.get("fingerprint") != record["fingerprint"]:
            raise InputError(f"{out} holds samples of another model ({old.get('model')}, fingerprint "
                             f"{old.get('fingerprint')}); use a new --out")
        diff = sorted(k for k in record["settings"] if old["settings"].get(k) != record["settings"][k])
        if diff:
            raise ConfigError(f"{out} was sampled with other settings ({', '.join(diff)}: "
                              + ", ".join(f"{old['settings'].get(k)} != {record['settings'][k]}" for k in diff)
                              + "); use a new --out")
        return old
    if done_ids(out):
        raise InputError(f"{out} holds samples without a sample.json; use a new --out")
    out.put("sample.json", json.dumps(record, indent=2).encode())
    return record


def done_ids(out: Store) -> set[str]:
    """The ids whose `ID/meta.json` marker exists, from one recursive listing."""
    return {name.rsplit("/", 1)[0] for name in out.find("/meta.json") if name.count("/") == 1}


def pending(out: Store, items: list[Item]) -> list[Item]:
    done = done_ids(out)
    return [it for it in items if it.id not in done]


class SampleWorker:
    """Loads the pipeline once; turns a batch of items into files under `out` and returns their meta rows."""

    def __init__(self, model_dir: str, out: Store, settings: SampleSettings, device: str | None = None,
                 threads: int = 0, storage_options: dict | None = None):
        import torch

        from training.base.runstore import fetched
        from training.ldm.pipeline import LayeredDiffusionPipeline

        if threads:  # torch intra-op threads of this process (0 = torch's default), like train.cpu_threads
            torch.set_num_threads(threads)

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[settings.precision]
        local = fetched(model_dir, storage_options)  # on this worker's node: no shared filesystem needed
        self.pipe = LayeredDiffusionPipeline.load(local, device=self.device, dtype=dtype)
        self.out, self.settings, self.model_dir = out, settings, str(model_dir)

    def run(self, items: list[Item]) -> list[dict]:
        from training.export.layers import export_files

        layers = self.pipe([it.prompt for it in items], [it.seed for it in items], steps=self.settings.steps,
                           guidance=self.settings.guidance)
        rows = []
        for it, lay in zip(items, layers):
            files = export_files(lay, self.settings.formats)
            for name, data in files.items():
                self.out.put(f"{it.id}/{name}", data)
            meta = {**dataclasses.asdict(it), "steps": self.settings.steps, "guidance": self.settings.guidance,
                    "precision": self.settings.precision, "model": self.model_dir,
                    "files": sorted(files)}
            self.out.put(f"{it.id}/meta.json", json.dumps(meta).encode())  # the completion marker, last
            rows.append(meta)
        return rows

    def __call__(self, batch: dict) -> dict:
        """Ray Data entry point: columns of Item fields in, the ids written out."""
        items = [Item(*(batch[f.name][i] for f in dataclasses.fields(Item))) for i in range(len(batch["id"]))]
        items = [Item(str(it.id), str(it.prompt), int(it.prompt_index), int(it.seed)) for it in items]
        return {"id": [r["id"] for r in self.run(items)]}


def run_local(model_dir, out: Store, items: list[Item], settings: SampleSettings, batch_size: int,
              device: str | None = None, progress: bool = True, threads: int = 0,
              storage_options: dict | None = None) -> int:
    from tqdm import tqdm

    if not items:
        return 0
    worker = SampleWorker(str(model_dir), out, settings, device, threads, storage_options)
    done = 0
    with tqdm(total=len(items), unit="sample", disable=not progress) as bar:
        for i in range(0, len(items), batch_size):
            done += len(worker.run(items[i:i + batch_size]))
            bar.update(len(items[i:i + batch_size]))
    return done


def run_ray(model_dir, out: Store, items: list[Item], settings: SampleSettings, batch_size: int, workers: int,
            ray_address: str | None = None, num_cpus: int | None = None, threads: int = 0,
            device: str | None = None, storage_options: dict | None = None) -> int:
    import ray

    from l2i_pipeline.core.gpus import Ask
    from l2i_pipeline.core.rayutil import init_ray, model_pool

    if not items:
        return 0
    init_ray(ray_address, num_cpus)
    _, pool, plan = model_pool([Ask(None, workers or None, device or "auto")])  # one GPU per worker if any
    ds = ray.data.from_items([dataclasses.asdict(it) for it in items],
                             override_num_blocks=max(1, min(len(items), 4 * plan.max_size)))
    args = (_model_name(model_dir), out, settings, device, threads, storage_options)
    ds = ds.map_batches(SampleWorker, fn_constructor_args=args, batch_size=batch_size, batch_format="numpy", **pool)
    return sum(1 for _ in ds.iter_rows())


def write_index(out: Store) -> str:
    """DIR/samples.parquet from every finished sample's meta.json, sorted by id."""
    import io

    rows = [json.loads(out.get(f"{i}/meta.json")) for i in sorted(done_ids(out))]
    for r in rows:
        r["dir"] = out.url_of(r["id"])
        r["paths"] = [out.url_of(f"{r['id']}/{f}") for f in r.pop("files")]
    schema = pa.schema([("id", pa.string()), ("prompt", pa.string()), ("prompt_index", pa.int64()),
                        ("seed", pa.int64()), ("steps", pa.int64()), ("guidance", pa.float64()),
                        ("precision", pa.string()), ("model", pa.string()), ("dir", pa.string()),
                        ("paths", pa.list_(pa.string()))])
    table = pa.Table.from_pylist(rows, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    out.put(SAMPLES_INDEX, buf.getvalue())
    return out.url_of(SAMPLES_INDEX)


def sample(model_dir: str | Path, out_dir: str | Path, prompts: list[str], n: int = 4, seed: int = 0,
           settings: SampleSettings | None = None, batch_size: int = 4, runner: str = "local", workers: int = 0,
           ray_address: str | None = None, num_cpus: int | None = None, device: str | None = None,
           threads: int = 0, storage_options: dict | str | None = None, lock: bool = True) -> dict:
    """Sample every (prompt, seed) not yet in `out_dir` (a path or URL); returns counts and the index URL.
    `threads`: torch intra-op threads per sampling process (0 = torch's default); it does not change the
    pixels. `lock`: hold `out_dir`'s output lock (a second concurrent run into it is refused)."""
    settings = (settings or SampleSettings()).check()
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if threads < 0:
        raise ConfigError(f"--threads must be >= 0 (0 = torch's default), got {threads}")
    from training.base.runstore import fetched

    storage_options = parse_storage_options(storage_options)
    local_model = fetched(model_dir, storage_options)  # a URL: RUN2/pipeline of `l2i train ldm --out URL`
    if not (local_model / "model_index.json").is_file():
        raise NotFound(f"not a pipeline dir (no model_index.json): {local_model} (expected RUN2/pipeline)")
    model = model_dir if "://" in str(model_dir) else local_model
    out = open_store(out_dir, storage_options)
    out.check_writable()
    items = plan(prompts, n, seed)
    with output_lock(out, "sample") if lock else contextlib.nullcontext():
        open_output(out, model, local_model, settings)
        todo = pending(out, items)
        log.info("%d samples planned, %d already done, %d to sample", len(items), len(items) - len(todo),
                 len(todo))
        if runner == "ray":
            made = run_ray(model, out, todo, settings, batch_size, workers, ray_address, num_cpus, threads, device,
                           storage_options)
        else:
            made = run_local(model, out, todo, settings, batch_size, device, threads=threads,
                             storage_options=storage_options)
        index = write_index(out)
    return {"planned": len(items), "skipped": len(items) - len(todo), "sampled": made, "index": index}
