"""The job frame (engine/job.py, executor.py, record.py) on a toy job: order of steps, skip, record, exit rule."""
import json

import numpy as np
import pytest

from l2i_pipeline.core.errors import ConfigError
from l2i_pipeline.core.lock import LockedError, output_lock
from l2i_pipeline.core.storage import open_store
from l2i_pipeline.engine.executor import LocalExecutor, columns
from l2i_pipeline.engine.job import Job, Work, run_job


class Square:
    """Writes NAME.txt (the unit and its marker) for each row; skips the unit named 'lost'."""

    def __init__(self, out):
        self.out = out

    def __call__(self, batch):
        names = [str(n) for n in batch["unit"] if str(n) != "lost"]
        for n, x in zip(batch["unit"], batch["x"]):
            if str(n) != "lost":
                self.out.put(f"{n}.txt", str(int(x) ** 2).encode())
        return {"unit": np.array(names, dtype=object)}


class Toy(Job):
    command, record_name, record_what = "toy", "toy.json", "squares"

    def __init__(self, out, names, power=2):
        self.out, self.names, self.power, self.steps = out, names, power, []

    def open(self):
        self.steps.append("open")
        return self.out

    def check(self):
        self.steps.append("check")

    def record(self):
        return {"settings": {"power": self.power}}

    def plan(self):
        self.steps.append("plan")
        return [{"unit": n, "x": i} for i, n in enumerate(self.names)]

    def committed(self, out, units):
        return {n[:-4] for n in out.list(".txt")}

    def work(self, todo):
        self.steps.append(f"work {len(todo)}")
        return Work(Square, (self.out,), batch_size=2)


def test_runs_skips_and_names_what_is_missing(tmp_path):
    out = open_store(str(tmp_path / "o"), {})
    job = Toy(out, ["a", "b", "c"])
    s = run_job(job, LocalExecutor())
    assert (s.planned, s.skipped, sorted(s.finished), s.missing, s.exit_code) == (3, 0, ["a", "b", "c"], [], 0)
    assert job.steps == ["open", "check", "plan", "work 3"]
    assert json.loads(out.get("toy.json")) == {"settings": {"power": 2}}
    s = run_job(Toy(out, ["a", "b", "c", "lost"]), LocalExecutor())
    assert (s.skipped, s.finished, s.missing, s.exit_code) == (3, [], ["lost"], 1)


def test_changed_settings_are_refused_naming_the_key(tmp_path):
    out = open_store(str(tmp_path / "o"), {})
    run_job(Toy(out, ["a"]), LocalExecutor())
    with pytest.raises(ConfigError, match=r"squares made with other settings \(power: 2 != 3"):
        run_job(Toy(out, ["a"], power=3), LocalExecutor())


def test_a_second_run_into_a_locked_output_is_refused_before_any_work(tmp_path):
    out = open_store(str(tmp_path / "o"), {})
    job = Toy(out, ["a"])
    with output_lock(out, "toy"):
        with pytest.raises(LockedError, match="is writing to"):
            run_job(job, LocalExecutor())
        assert job.steps == ["open", "check"] and not out.exists("toy.json")
        assert run_job(Toy(out, ["a"]), LocalExecutor(), lock=False).finished == ["a"]


def test_local_executor_keeps_each_units_rows_apart():
    class Echo:
        def __call__(self, batch):
            return {"unit": batch["unit"], "n": np.full(len(batch["unit"]), len(batch["unit"]))}

    rows = list(LocalExecutor().map(Echo, (), [{"unit": "a", "k": 3}, {"unit": "b", "k": 1}], batch_size=2,
                                    expand=lambda u: ({"unit": u["unit"]} for _ in range(u["k"]))))
    assert [(r["unit"], int(r["n"])) for r in rows] == [("a", 2), ("a", 2), ("a", 1), ("b", 1)]
    assert columns([{"s": "x", "v": 1}])["s"].dtype == object


class CpuSquare(Square):
    @classmethod
    def ask(cls, out):
        from l2i_pipeline.core.gpus import Ask

        return Ask(None, None, "cpu")


@pytest.mark.slow
def test_ray_executor_writes_what_the_local_one_does(tmp_path):
    import ray

    from l2i_pipeline.engine.executor import RayExecutor

    class RayToy(Toy):
        def work(self, todo):
            return Work(CpuSquare, (self.out,), batch_size=2)

    names = [f"u{i}" for i in range(5)] + ["lost"]
    local, remote = (open_store(str(tmp_path / k), {}) for k in ("local", "ray"))
    assert run_job(Toy(local, names), LocalExecutor()).missing == ["lost"]
    try:
        s = run_job(RayToy(remote, names), RayExecutor(num_cpus=2, actors=1))
    finally:
        ray.shutdown()
    assert s.missing == ["lost"] and sorted(s.finished) == names[:-1]
    assert {n: remote.get(f"{n}.txt") for n in names[:-1]} == {n: local.get(f"{n}.txt") for n in names[:-1]}
