"""`l2i sample`: prompts x seeds -> DIR/<id>/ layered files and DIR/samples.parquet, resumable.

A sample's id is fixed by its prompt (index and hash) and seed, and its `meta.json` is written last,
with the size and sha256 of each file (sampling/markers.py): a rerun skips every sample whose marker
exists and whose files match it, and redoes a torn one. `DIR/sample.json` records the model's fingerprint and
the settings; a rerun with another model or other settings is refused rather than mixing samples.
A job on the frame (engine/job.py): runners `local` (one process, batches of --batch-size) and `ray` (an
actor pool, one pipeline per actor, GPUs when the cluster has them) for the tens of thousands of samples
evaluation needs; a sample left unwritten is named and the command exits 1.
DIR is a local path or a storage URL: every file is one whole-object put through the storage layer, and
the job holds DIR's output lock. A URL model is fetched by each worker into its own cache.
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
from l2i_pipeline.core.gpus import Ask
from l2i_pipeline.core.storage import Store, open_store, parse_storage_options
from l2i_pipeline.engine.executor import executor_for
from l2i_pipeline.engine.job import Job, Work, run_job
from l2i_pipeline.engine.record import check_run_record
from l2i_pipeline.formats.names import SAMPLES_INDEX
from training.base.fingerprint import dir_fingerprint
from training.export.layers import DEFAULT_FORMATS, FORMATS
from training.sampling.markers import META, marker, verified_ids

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


class SampleJob(Job):
    """`l2i sample` on the job frame (engine/job.py): a unit is one (prompt, seed) item, committed by the
    worker (its files, then `ID/meta.json` last); the run record is DIR/sample.json."""

    command, unit_key, record_name, record_what, progress = "sample", "id", "sample.json", "samples", "sample"

    def __init__(self, model, local_model: Path, out: Store, items: list[Item], settings: SampleSettings,
                 batch_size: int, device: str | None, threads: int, storage_options: dict):
        self.model, self.local_model, self.out, self.items = model, local_model, out, items
        self.settings, self.batch_size, self.device = settings, batch_size, device
        self.threads, self.storage_options = threads, storage_options
        self.sampled = 0

    def open(self) -> Store:
        return self.out

    def check(self) -> None:
        self.out.check_writable()

    def record(self) -> dict:
        return {"model": _model_name(self.model), "fingerprint": dir_fingerprint(self.local_model),
                "settings": json.loads(json.dumps(dataclasses.asdict(self.settings)))}

    def open_record(self, out: Store) -> dict:
        """DIR/sample.json: the same model (by fingerprint, wherever it lies now) and settings."""
        record = self.record()
        if out.exists("sample.json"):
            old = json.loads(out.get("sample.json"))
            if old.get("fingerprint") != record["fingerprint"]:
                raise InputError(f"{out} holds samples of another model ({old.get('model')}, fingerprint "
                                 f"{old.get('fingerprint')}); use a new --out")
        elif done_ids(out):
            raise InputError(f"{out} holds samples without a sample.json; use a new --out")
        return check_run_record(out, "sample.json", record, "samples", ignore=("model",))

    def plan(self) -> list[dict]:
        return [dataclasses.asdict(it) for it in self.items]

    def committed(self, out: Store, units: list[dict]) -> set[str]:
        good, torn = verified_ids(out)
        for sid, why in torn.items():
            log.warning("sample %s is torn (%s): redoing it", sid, why)
        return set(good)

    def work(self, todo: list[dict]) -> Work:
        return Work(SampleWorker, (_model_name(self.model), self.out, self.settings, self.device, self.threads,
                                   self.storage_options), self.batch_size)

    def finish(self, out: Store, summary) -> dict:
        return {"index": write_index(out)}


def done_ids(out: Store) -> set[str]:
    """The ids whose `ID/meta.json` marker exists, from one recursive listing (whole or torn)."""
    return {name.rsplit("/", 1)[0] for name in out.find(f"/{META}") if name.count("/") == 1}


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
            meta = marker({**dataclasses.asdict(it), "steps": self.settings.steps, "guidance": self.settings.guidance,
                           "precision": self.settings.precision, "model": self.model_dir}, files)
            self.out.put(f"{it.id}/{META}", json.dumps(meta).encode())  # the completion marker, last
            rows.append(meta)
        return rows

    @classmethod
    def ask(cls, model_dir, out, settings, device=None, *_) -> Ask:
        return Ask(None, None, device or "auto")  # one GPU per worker when the cluster has or can get one

    def __call__(self, batch: dict) -> dict:
        """Executor entry point: columns of Item fields in, the ids written out."""
        items = [Item(*(batch[f.name][i] for f in dataclasses.fields(Item))) for i in range(len(batch["id"]))]
        items = [Item(str(it.id), str(it.prompt), int(it.prompt_index), int(it.seed)) for it in items]
        return {"id": [r["id"] for r in self.run(items)]}


def write_index(out: Store) -> str:
    """DIR/samples.parquet from every whole sample's meta.json, sorted by id (a torn one is left out)."""
    import io

    good, _ = verified_ids(out)
    rows = [dict(good[i]) for i in sorted(good)]
    for r in rows:
        r["dir"] = out.url_of(r["id"])
        r["paths"] = [out.url_of(f"{r['id']}/{f}") for f in sorted(r.pop("files"))]
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
    job = SampleJob(model, local_model, open_store(out_dir, storage_options), plan(prompts, n, seed), settings,
                    batch_size, device, threads, storage_options)
    s = run_job(job, executor_for(runner, ray_address, num_cpus, workers or None), lock=lock)
    return {"planned": s.planned, "skipped": s.skipped, "sampled": len(s.finished), "missing": s.missing,
            "index": s.extra["index"]}
