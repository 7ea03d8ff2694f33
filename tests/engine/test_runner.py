"""Runner details that need no cluster: model stages fail with a clear message on a worker that lacks
the weights, Ray error chains give back the user's error, and Ray's global DataContext is left alone."""
import pytest

from l2i_pipeline.core.config import load_config
from l2i_pipeline.core.errors import ConfigError, UserError
from l2i_pipeline.engine.runner import _ActorStage, _user_error
from stages.saliency import SaliencyStage


def test_a_model_stage_without_its_weights_names_the_node_and_the_file(tmp_path):
    cfg = load_config(None, ["saliency.backend=icon", f"saliency.weights={tmp_path / 'ICON-R.weight'}"])
    with pytest.raises(UserError, match=r"SaliencyStage cannot start on node .*ICON-R.weight"):
        _ActorStage(SaliencyStage, cfg)


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
        assert _user_error(outer) is inner
    assert _user_error(RuntimeError("plain")) is None


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
