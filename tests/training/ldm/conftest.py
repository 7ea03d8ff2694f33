"""Tiny models built in code, saved, and loaded back with the production loaders."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from l2i_pipeline.core.commit import write_output_shard
from l2i_pipeline.core.sample import Sample


def tiny_sd_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=8,
                         latent_channels=4, sample_size=16)


@pytest.fixture(scope="session")
def text_encoder_dir(tmp_path_factory):
    from training.ldm.text import build_tiny_text_encoder

    return build_tiny_text_encoder(tmp_path_factory.mktemp("text_encoder"))


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory, text_encoder_dir):
    """A saved pipeline over the SD-stack codec (12 latent channels), random weights."""
    from training.latents.codec import SDStackAE
    from training.ldm.ddim import ddim_scheduler
    from training.ldm.pipeline import LayeredDiffusionPipeline
    from training.ldm.text import load_text_encoder
    from training.ldm.unet import build_unet

    te, tok = load_text_encoder(text_encoder_dir)
    ae = SDStackAE.from_sd_vae(tiny_sd_vae())
    torch.manual_seed(1)
    unet = build_unet("tiny", 12, 32, 8)
    pipe = LayeredDiffusionPipeline(ae=ae, unet=unet, text_encoder=te, tokenizer=tok, scheduler=ddim_scheduler(),
                                    latent_scale=0.5)
    out = tmp_path_factory.mktemp("pipe") / "pipeline"
    pipe.save_pretrained(out)
    return out


# ---- synthetic L2I shards: a coloured disc on a gradient with its soft mask, via the project's shard writer
WORDS = ["a red dog", "a blue cat", "the green photo", "a dog on the grass", "a cat in the photo"]


def _sample(key: str, size: int, rng: np.random.Generator, caption: str) -> Sample:
    yy, xx = np.mgrid[:size, :size]
    cy, cx, r = rng.integers(size // 4, 3 * size // 4, 2).tolist() + [int(rng.integers(size // 8, size // 3))]
    mask = np.clip(1.5 - np.hypot(yy - cy, xx - cx) / r, 0, 1).astype(np.float32)
    colour = rng.integers(0, 256, 3)
    bg = np.dstack([(xx * 255 // size), (yy * 255 // size), np.full_like(xx, int(rng.integers(0, 256)))]).astype(
        np.uint8)
    image = (mask[..., None] * colour + (1 - mask[..., None]) * bg).astype(np.uint8)
    fg = np.where(mask[..., None] > 0.1, image, 0).astype(np.uint8)

    def png(a):
        return cv2.imencode(".png", cv2.cvtColor(a, cv2.COLOR_RGB2BGR) if a.ndim == 3 else a)[1].tobytes()

    s = Sample(key, "u", caption=caption, meta={"url": f"http://x/{key}.jpg"})
    s.members = {"jpg": cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes(),
                 "fg.png": png(fg), "mask.png": png(np.round(mask * 255).astype(np.uint8)),
                 "inpaint_mask.png": png((mask > 0).astype(np.uint8) * 255), "bg.png": png(bg),
                 "txt": caption.encode(), "json": b"{}"}
    return s


def write_l2i(out: Path, shards: int = 2, per_shard: int = 6, size: int = 64, seed: int = 0,
              rejected: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(shards):
        samples = [_sample(f"{i:05d}{j:04d}", size, rng, WORDS[(i * per_shard + j) % len(WORDS)])
                   for j in range(per_shard)]
        samples += [Sample(f"{i:05d}9{j:03d}", "u", caption="x").reject("saliency:empty") for j in range(rejected)]
        write_output_shard(out, f"{i:05d}_0000", samples)
    return out


@pytest.fixture(scope="session")
def l2i_dir(tmp_path_factory):
    return write_l2i(tmp_path_factory.mktemp("l2i"))


@pytest.fixture(scope="session")
def ae_dir(tmp_path_factory):
    """A tiny CaT2I-AE (64^2 -> 4 x 8 x 8), saved as `l2i train ae` exports it."""
    from training.models.ae import CaT2IAE

    torch.manual_seed(0)
    ae = CaT2IAE(block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=8, head_width=8,
                 mid_block_attention=False)
    out = tmp_path_factory.mktemp("ae") / "ae"
    ae.save_pretrained(out)
    return out


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine: extra intra-op threads only contend (30x slower under load)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
