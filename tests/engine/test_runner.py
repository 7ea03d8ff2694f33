"""Runner details that need no cluster: model stages fail with a clear message on a worker that lacks
the weights, Ray error chains give back the user's error, and Ray's global DataContext is left alone."""
import pytest

from l2i_pipeline.core.errors import ConfigError, UserError, user_error_in
from l2i_pipeline.engine.runner import DeviceActor
from stages.config import load_config
from stages.saliency import SaliencyStage


def test_a_model_stage_without_its_weights_names_the_node_and_the_file(tmp_path):
    cfg = load_config(None, ["saliency.backend=icon", f"saliency.weights={tmp_path / 'ICON-R.weight'}"])
    with pytest.raises(UserError, match=r"SaliencyStage cannot start on node .*ICON-R.weight"):
        DeviceActor(cfg, (SaliencyStage,), out=None)


@pytest.mark.parametrize("backend, overlap", [("CountingInpainter", False), ("ThreadSafeCountingInpainter", True)])
def test_device_actor_calls_overlap_only_in_backends_that_guard_their_device(backend, overlap, tmp_path):
    """Three calls at once in one actor: a backend without `thread_safe` is entered by one at a time; the
    calls still write one part per shard each, and only records come back."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import toybackends

    from l2i_pipeline.core.sample import Sample, to_batch
    from l2i_pipeline.core.storage import open_store
    from stages.encode import EncodeStage
    from stages.inpaint import InpaintStage

    cfg = load_config(None, [f"inpaint.backend=toybackends:{backend}"])
    actor = DeviceActor(cfg, (InpaintStage, EncodeStage), open_store(str(tmp_path / "out")))
    cls = getattr(toybackends, backend)
    cls.peak = 0

    def batch(i: int) -> dict:
        image = np.zeros((32, 32, 3), np.uint8)
        mask = np.zeros((32, 32), np.float32)
        mask[8:24, 8:24] = 1
        return to_batch([Sample(f"k{i}{j}", f"u{i}", image=image, mask=mask, fg=image, members={"jpg": b"x"},
                                inpaint_mask=(mask * 255).astype(np.uint8)) for j in range(2)])

    with ThreadPoolExecutor(3) as pool:
        out = list(pool.map(actor, [batch(i) for i in range(3)]))
    assert (cls.peak > 1) == overlap
    assert [list(r["unit"]) for r in out] == [["u0"], ["u1"], ["u2"]] and all(not e for r in out for e in r["error"])


def test_a_batch_travels_as_one_row():
    from l2i_pipeline.core.sample import Sample, from_batch, to_batch

    batch = to_batch([Sample("a", "u"), Sample("b", "u", status="rejected", reason="r")])
    assert len(batch["samples"]) == 1
    assert [(s.key, s.reason) for s in from_batch(batch)] == [("a", None), ("b", "r")]
    two = {"samples": [batch["samples"][0], to_batch([Sample("c", "v")])["samples"][0]]}
    assert [s.key for s in from_batch(two)] == ["a", "b", "c"]


def test_the_user_error_is_found_inside_a_ray_error_chain():
    class RayTaskErrorLike(Exception):
        def __init__(self, cause):
            super().__init__("task failed")
            self.cause = cause

    inner = ConfigError("saliency.weights: file not found")
    try:
        try:
            raise RayTaskErrorLike(inner)
        except RayTaskErrorLike as e:
            raise RuntimeError("dataset execution failed") from e
    except RuntimeError as outer:
        assert user_error_in(outer) is inner
    assert user_error_in(RuntimeError("plain")) is None


def test_run_ray_leaves_the_global_data_context_alone(raw_dir, tmp_path):
    import ray

    from l2i_pipeline.engine.synthesize import synthesize

    ctx = ray.data.DataContext.get_current()
    before = (ctx.execution_options.preserve_order, ctx.op_resource_reservation_enabled)
    try:
        synthesize(raw_dir, tmp_path / "l2i", load_config(None, ["resolution=96", "output_shard_size=4"]),
                   runner="ray", num_cpus=2)
        ctx = ray.data.DataContext.get_current()
        assert (ctx.execution_options.preserve_order, ctx.op_resource_reservation_enabled) == before
    finally:
        ray.shutdown()
