"""Issue 26, both halves at once: layers.count=3 with layers.alpha=matting gives every layer its soft alpha
(`alpha.png`, `fg_rgba.png`; `l{k}.alpha.png`, `l{k}.fg_rgba.png`), the generic reader returns them, and each
layer's soft composite holds: I_k ~ a F'_k + (1 - a) B_k."""
import json

import numpy as np
from rawshards import write_scene_shard

from l2i_pipeline.core.shards import iter_output_samples, list_output_shards
from l2i_pipeline.engine.synthesize import synthesize
from l2i_pipeline.formats.decode import read_layers
from stages.config import load_config

SETTINGS = ["resolution=128", "output_shard_size=3", "saliency.backend=classical", "layers.count=3",
            "layers.dilate_kernel=5", "layers.alpha=matting"]


def test_every_peeled_layer_gets_its_soft_alpha(tmp_path):
    write_scene_shard(tmp_path / "raw", size=160)
    out = tmp_path / "l2i"
    synthesize(tmp_path / "raw", out, load_config(None, SETTINGS), runner="local")
    deep = 0
    for name in list_output_shards(out):
        for _, members in iter_output_samples(out, name):
            meta = json.loads(members["json"])
            layers = read_layers(members)
            assert len(layers) == meta["depth"]
            deep += meta["depth"] > 1
            for k, layer in enumerate(layers, start=1):
                p = "" if k == 1 else f"l{k}."
                assert {p + "alpha.png", p + "fg_rgba.png"} <= set(members), (k, sorted(members))
                assert layer.alpha is not None and layer.fg_rgba is not None
                a = layer.alpha.astype(np.float32)[..., None]
                a = a / 255.0 if a.max() > 1 else a
                image = layers[k - 2].bg if k > 1 else None  # layer k peels the background under layer k-1
                if image is not None:
                    soft = a * layer.fg_rgba[..., :3] + (1 - a) * layer.bg
                    assert np.abs(soft - image.astype(np.float32)).mean() < 3.0, (k, name)
    assert deep >= 2
    # training on both: data.view=peel with data.fg=rgba reads layer k's F' and alpha
    from training.data.stream import decode_sample

    members = next(m for n in list_output_shards(out) for _, m in iter_output_samples(out, n)
                   if json.loads(m["json"])["depth"] > 1)
    two = decode_sample(members, 64, False, layer=2, fg="rgba")
    alpha = read_layers(members)[1].alpha
    assert two["mask"].shape == (1, 64, 64) and 0 < float(two["mask"].mean()) < 1
    assert abs(float(two["mask"].mean()) - float(np.asarray(alpha, np.float32).mean() / (255 if alpha.max() > 1
                                                                                              else 1))) < 0.05
