"""The job frame: one order of steps for every long job (`l2i sample`, `encode`, `score`), one summary and
one exit-code rule.

`run_job(job, executor, lock)` does, in order: open the output store (`Job.open`), check the inputs
before any work (`Job.check`), take the output's lock (core/lock.py; `lock=False` skips it), write or
check the run record (`Job.open_record`, by default engine/record.py's check: a rerun with other
output-affecting settings is refused naming the keys), plan the units (`Job.plan`), skip the committed
ones (`Job.committed`), run the rest through the executor (engine/executor.py: the worker class and its
arguments from `Job.work`), gather the output rows (`Job.collect` names the units each row finishes, once
their bytes and marker are written: by the worker, or by `collect` itself), and end (`Job.finish`, e.g. an
index). A planned unit that was not finished is named in `Summary.missing`, and the command exits 1.
See docs/ARCHITECTURE.md ("The job frame").
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from l2i_pipeline.core.lock import output_lock
from l2i_pipeline.core.storage import Store
from l2i_pipeline.engine.executor import Executor
from l2i_pipeline.engine.record import check_run_record

log = logging.getLogger(__name__)


@dataclass
class Work:
    """What the executor runs: a worker class, its constructor args, and how rows reach it."""

    worker: type
    args: tuple
    batch_size: int = 1
    expand: Any = None  # unit -> rows on the CPU side (executor.py), or None: a unit is a row
    expand_kwargs: dict = field(default_factory=dict)
    units: list[dict] | None = None  # the units to run (None: every unit to do)
    committed: list[str] = field(default_factory=list)  # units committed while planning (nothing to run)


@dataclass
class Summary:
    planned: int
    skipped: int
    finished: list[str]
    missing: list[str]
    seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """The one rule: a planned unit left unwritten fails the command."""
        return 1 if self.missing else 0


class Job:
    """A long job's steps; subclasses fill them in (see the module docstring for the order)."""

    command = "job"  # the `l2i` command, named by the lock and the messages
    unit_key = "unit"  # the field of a unit dict that names it
    record_name: str | None = None  # the run record in the output (None: no run record)
    record_what = "outputs"  # "holds <what> made with other settings"
    record_sort_keys = False
    progress: str | None = None  # a progress bar over the units, in these words ("sample"); None: none

    def open(self) -> Store:
        raise NotImplementedError

    def check(self) -> None:
        """Inputs, before any work or write."""

    def record(self) -> dict:
        return {}

    def open_record(self, out: Store) -> dict | None:
        if self.record_name is None:
            return None
        return check_run_record(out, self.record_name, self.record(), self.record_what,
                                sort_keys=self.record_sort_keys)

    def plan(self) -> list[dict]:
        raise NotImplementedError

    def committed(self, out: Store, units: list[dict]) -> set[str]:
        return set()

    def work(self, todo: list[dict]) -> Work:
        raise NotImplementedError

    def collect(self, row: dict) -> list[str]:
        """The units this output row finishes (default: the row's own unit)."""
        return [str(row[self.unit_key])]

    def finish(self, out: Store, summary: Summary) -> dict:
        return {}


def _run(job: Job, out: Store, executor: Executor, t0: float) -> Summary:
    job.open_record(out)
    units = job.plan()
    done = job.committed(out, units)
    todo = [u for u in units if str(u[job.unit_key]) not in done]
    log.info("%s: %d units planned, %d already done, %d to run", job.command, len(units), len(units) - len(todo),
             len(todo))
    finished: list[str] = []
    if todo:
        w = job.work(todo)
        finished += w.committed
        units_to_run = todo if w.units is None else w.units
        rows: Iterator[dict] = executor.map(w.worker, w.args, units_to_run, w.batch_size, w.expand,
                                            w.expand_kwargs, what=f"units of `l2i {job.command}`")
        from tqdm import tqdm

        with tqdm(total=len(units_to_run), unit=job.progress or "unit", disable=job.progress is None) as bar:
            for row in rows:
                done_now = job.collect(row)
                finished += done_now
                bar.update(len(done_now))
    left = set(finished)
    missing = [str(u[job.unit_key]) for u in todo if str(u[job.unit_key]) not in left]
    summary = Summary(len(units), len(units) - len(todo), finished, missing, 0.0)
    summary.seconds = time.perf_counter() - t0
    summary.extra = job.finish(out, summary)
    return summary


def run_job(job: Job, executor: Executor, lock: bool = True) -> Summary:
    """Run `job` through `executor` (the steps in the module docstring); `lock`: hold the output's lock."""
    out = job.open()
    job.check()
    t0 = time.perf_counter()
    with output_lock(out, job.command, enabled=lock):
        return _run(job, out, executor, t0)
