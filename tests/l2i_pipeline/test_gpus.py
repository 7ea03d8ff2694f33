"""What a job asks of Ray for its models (core/gpus.py): the GPUs its config implies, whether or not they exist
yet. Before issue 23 the ask was read off `ray.cluster_resources()` at start, so a KubeRay job whose GPU group
starts at zero pods asked for no GPU at all (and an explicit num_gpus was dropped)."""
from __future__ import annotations

import math

import pytest

from l2i_pipeline.core.errors import ConfigError
from l2i_pipeline.core.gpus import Ask, Plan, device_plan, gpu_reach


def test_with_gpus_present_each_actor_holds_one_gpu_with_every_model():
    auto2 = [Ask(), Ask()]
    assert device_plan(1, auto2, 1) == Plan(1.0, 1, 1)
    assert device_plan(4, auto2, 4) == Plan(1.0, 4, 4)
    assert device_plan(4, [Ask(), Ask(), Ask(0.25, 1)], 4) == Plan(1.0, 1, 1)  # the set size wins
    assert device_plan(4, [Ask(0.25), Ask(0.25)], 4) == Plan(0.5, 8, 8)  # two actors per GPU
    assert device_plan(8, [Ask(1.0), Ask(1.0, 2)], 8) == Plan(2.0, 2, 2)


def test_a_cluster_without_gpus_yet_still_gets_the_ask():
    # KubeRay: the GPU group starts at 0 pods; the autoscaler's node groups can bring up 8 GPUs
    assert device_plan(0, [Ask(), Ask()], gpu_reach(0, private=False, ceiling=8)) == Plan(1.0, 1, 8)
    # a joined cluster that publishes no autoscaler config: a GPU node may still join -> ask, one actor
    assert gpu_reach(0, private=False, ceiling=None) is None
    assert device_plan(0, [Ask()], None) == Plan(1.0, 1, 1)
    # an unbounded GPU group: the pool may grow (capped, as Ray needs a number)
    plan = device_plan(0, [Ask()], gpu_reach(0, False, math.inf))
    assert plan.gpus == 1.0 and plan.size == 1 and plan.max_size >= 1000
    # an explicit share and pool size are asked as given, never dropped
    assert device_plan(0, [Ask(0.5, 3, "auto")], None) == Plan(0.5, 3, 3)


def test_cpu_asks_for_none_and_auto_is_cpu_where_no_gpu_can_come():
    assert device_plan(4, [Ask(None, None, "cpu")], 4) == Plan(0.0, 1, 1)
    assert device_plan(4, [Ask(1.0, 2, "cpu")], 4) == Plan(0.0, 2, 2)  # device=cpu wins over a share
    assert device_plan(4, [Ask(None, None, "cpu"), Ask(0.25, None, "cuda")], 4) == Plan(0.25, 16, 16)
    # a private local Ray (the default on one machine) without GPUs: nothing will join it
    assert gpu_reach(0, private=True, ceiling=None) == 0
    assert device_plan(0, [Ask(), Ask(None, 3)], 0) == Plan(0.0, 3, 3)
    # an autoscaler whose node groups have no GPU
    assert device_plan(0, [Ask()], gpu_reach(0, False, 0)) == Plan(0.0, 1, 1)
    assert device_plan(4, [Ask(0.0), Ask(0.0)], 4) == Plan(0.0, 1, 1)  # every share set to 0


def test_a_required_gpu_that_can_never_come_is_a_config_error():
    for ask, named in ((Ask(None, None, "cuda"), "device=cuda"), (Ask(1.0), "num_gpus=1"),
                       (Ask(None, None, "cuda:1"), "device=cuda:1")):
        with pytest.raises(ConfigError, match=named):
            device_plan(0, [ask], 0)
    assert device_plan(0, [Ask(None, None, "cuda")], None) == Plan(1.0, 1, 1)  # may still join: wait


def test_stage_resources_carry_the_models_device():
    from stages.config import load_config
    from stages.inpaint import InpaintStage
    from stages.saliency import SaliencyStage

    cfg = load_config(None, ["saliency.backend=u2netp", "saliency.device=cpu", "inpaint.backend=telea"])
    sal, inp = SaliencyStage(cfg), InpaintStage(cfg)
    assert sal.resources.device == "cpu" and inp.resources.device == "cpu"  # CPU backends: tasks, no GPU
    cfg = load_config(None, ["saliency.backend=u2netp", "saliency.device=cuda", "saliency.num_gpus=0.5"])
    sal = SaliencyStage(cfg)
    assert (sal.resources.device, sal.resources.gpus) == ("cuda", 0.5)


def test_the_autoscaler_ceiling_is_read_from_the_cluster_config_ray_publishes():
    """Ray's GCS holds the autoscaler's node groups (what KubeRay's GPU group can bring up); put one there as
    the autoscaler would and read it back through the same API Ray Data uses."""
    import ray
    from ray._raylet import GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, GCS_AUTOSCALER_STATE_NAMESPACE
    from ray.core.generated import autoscaler_pb2
    from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_put

    from l2i_pipeline.core.gpus import autoscaler_gpus, cluster_plan, private_ray

    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
    try:
        assert private_ray() and autoscaler_gpus() is None
        assert cluster_plan([Ask()])[1] == Plan(0.0, 1, 1)  # nothing can bring a GPU: auto is CPU
        config = autoscaler_pb2.ClusterConfig()
        gpu_group = config.node_group_configs.add(name="gpu-workers", max_count=4)
        gpu_group.resources["GPU"] = 2
        gpu_group.resources["CPU"] = 8
        config.node_group_configs.add(name="cpu-workers", max_count=16).resources["CPU"] = 4
        key, ns = GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, GCS_AUTOSCALER_STATE_NAMESPACE
        _internal_kv_put(key, config.SerializeToString(), namespace=ns)
        assert autoscaler_gpus() == 8
        assert cluster_plan([Ask(), Ask()])[1] == Plan(1.0, 1, 8)  # one actor now, up to one per GPU to come
        _internal_kv_del(key, namespace=ns)
    finally:
        ray.shutdown()
