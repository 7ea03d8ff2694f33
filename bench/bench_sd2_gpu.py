"""SD2-inpainting throughput and MFU: the naive pipeline call vs our stage backend (stages/inpaint_sd2.py).

Random weights in the published SD2-inpainting shapes (configs inline below; nothing is downloaded), so
the timings are real and the images are noise. Prints images/s per configuration and the ratio to (a):

  (a) naive: `pipe(prompt="", image=..., mask_image=...)` at its defaults (guidance 7.5, so two UNet
      passes per step), batch 1, fp16 as on the model card;
  (b) ours: Sd2Inpainter (one UNet pass per step, SDPA, channels_last) at batch 1/8/16/32, fp16 and bf16,
      with and without torch.compile.

    python3 bench/bench_sd2_gpu.py                     # full: 512x512, 50 steps (may need splitting, below)
    python3 bench/bench_sd2_gpu.py --quick             # brief: 10 steps, batch 1 and 8, fp16, no compile
    python3 bench/bench_sd2_gpu.py --compile on --dtypes bf16 --batches 8,32   # one slice of the full grid

Needs torch, diffusers, transformers, numpy, opencv; repo root on PYTHONPATH. Never asserts on time.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    PNDMScheduler,
    StableDiffusionInpaintPipeline,
    UNet2DConditionModel,
)
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from stages.config import InpaintConfig
from stages.inpaint_sd2 import Sd2Inpainter

# Published configs of stabilityai/stable-diffusion-2-inpainting (unet/, vae/, text_encoder/, scheduler/).
UNET = {
    "sample_size": 64, "in_channels": 9, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280), "attention_head_dim": (5, 10, 20, 20),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 1024, "use_linear_projection": True, "dual_cross_attention": False,
    "center_input_sample": False, "flip_sin_to_cos": True, "freq_shift": 0, "downsample_padding": 1,
    "mid_block_scale_factor": 1, "act_fn": "silu", "norm_num_groups": 32, "norm_eps": 1e-5,
}
VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "sample_size": 512,
    "block_out_channels": (128, 256, 512, 512), "act_fn": "silu", "norm_num_groups": 32,
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
}
TEXT_ENCODER = {  # OpenCLIP ViT-H/14 text tower, penultimate layer (23 of 24 layers)
    "vocab_size": 49408, "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 23,
    "num_attention_heads": 16, "max_position_embeddings": 77, "hidden_act": "gelu", "layer_norm_eps": 1e-5,
    "projection_dim": 512, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
}
SCHEDULER = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
    "prediction_type": "epsilon", "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
# dense fp16/bf16 tensor-core peaks (vendor datasheets), for MFU; --peak-tflops for anything else
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "GH200": 989.4, "A100": 312.0, "L40S": 362.1, "L4": 121.0, "A10": 125.0}
log = logging.getLogger("bench_sd2")


def tiny_tokenizer(tmp: Path) -> CLIPTokenizer:
    """Tokenizer speed is irrelevant here; the empty prompt needs only the special tokens."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2, **{c + "</w>": 3 + i for i, c in enumerate("abc")}}
    (tmp / "vocab.json").write_text(json.dumps(vocab))
    (tmp / "merges.txt").write_text("#version: 0.2\n")
    (tmp / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}))
    return CLIPTokenizer.from_pretrained(str(tmp))


def build_pipeline(device: str, dtype: torch.dtype, tmp: Path) -> StableDiffusionInpaintPipeline:
    torch.manual_seed(0)
    with torch.device(device):  # initialise the random weights on the device: much faster than on CPU
        unet = UNet2DConditionModel(**UNET)
        vae = AutoencoderKL(**VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT_ENCODER))
    pipe = StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tiny_tokenizer(tmp), unet=unet,
        scheduler=PNDMScheduler(**SCHEDULER), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device, dtype)


def inputs(n: int, size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    return images, [mask] * n


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def flops_per_image(pipe, device: str, size: int, steps: int) -> float:
    """Model FLOPs of one image: `steps` UNet passes (one per step, as our backend runs them), one VAE encode
    of the masked image and one decode; counted by torch's FlopCounterMode on single-image calls."""
    from torch.utils.flop_counter import FlopCounterMode

    dtype, h = pipe.unet.dtype, size // 8
    with torch.no_grad(), FlopCounterMode(display=False) as unet:
        pipe.unet(torch.zeros(1, 9, h, h, device=device, dtype=dtype), torch.tensor([500], device=device),
                  encoder_hidden_states=torch.zeros(1, 77, 1024, device=device, dtype=dtype))
    with torch.no_grad(), FlopCounterMode(display=False) as vae:
        z = pipe.vae.encode(torch.zeros(1, 3, size, size, device=device, dtype=dtype)).latent_dist.mean
        pipe.vae.decode(z)
    return float(unet.get_total_flops() * steps + vae.get_total_flops())


def peak_flops(device: str, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    return next((t * 1e12 for k, t in sorted(PEAK_TFLOPS.items(), key=lambda kv: -len(kv[0])) if k in name), None)


def time_naive(pipe, device: str, size: int, steps: int, iters: int) -> float:
    """(a): what a user writes from the model card. Returns images/s."""
    images, masks = inputs(1, size)
    image, mask = Image.fromarray(images[0]), Image.fromarray(masks[0])
    pipe(prompt="", image=image, mask_image=mask, height=size, width=size, num_inference_steps=2)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        pipe(prompt="", image=image, mask_image=mask, height=size, width=size, num_inference_steps=steps)
    sync(device)
    return iters / (time.perf_counter() - t0)


def time_ours(pipe, device: str, size: int, steps: int, iters: int, batch: int, dtype: str,
              compile_: bool, mode: str = "default", vae_batch: int | None = None) -> tuple[float, int, float]:
    """(b): our backend on `batch` images per call. Returns images/s, batch actually used, peak GiB."""
    cfg = InpaintConfig(backend="sd2", steps=steps, dtype=dtype, compile=compile_, compile_mode=mode,
                        vae_batch_size=vae_batch, batch_size=batch, device=device)
    inp = Sd2Inpainter(cfg, seed=0)
    if compile_:
        torch._dynamo.reset()  # a fresh graph per configuration, compiled for this batch size only
    inp.use_pipeline(pipe, device)
    images, masks = inputs(batch, size)
    keys = [f"{i:09d}" for i in range(batch)]
    inp.cfg.steps = 2  # warm-up (and compilation) on short runs
    inp.inpaint(images, masks, keys)
    inp.cfg.steps = steps
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        inp.inpaint(images, masks, keys)
    sync(device)
    rate = batch * iters / (time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0
    return rate, inp.batch_size, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default 50; 10 with --quick)")
    ap.add_argument("--quick", action="store_true", help="10 steps, batches 1,8, fp16, no compile")
    ap.add_argument("--batches", default=None, help="comma list (default 1,8,16,32)")
    ap.add_argument("--dtypes", default=None, help="comma list of fp16,bf16,fp32 (default fp16,bf16)")
    ap.add_argument("--compile", choices=["off", "on", "both"], default=None, help="default both")
    ap.add_argument("--compile-mode", default="default",
                    help="torch.compile mode for the compiled rows (reduce-overhead: CUDA graphs)")
    ap.add_argument("--vae-batch", type=int, default=None, help="inpaint.vae_batch_size (default: whole batch)")
    ap.add_argument("--iters", type=int, default=1, help="timed calls per configuration")
    ap.add_argument("--size", type=int, default=512, help="image side in pixels")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--no-naive", action="store_true", help="skip (a); ratios are then not printed")
    ap.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: by GPU name)")
    args = ap.parse_args()
    steps = args.steps or (10 if args.quick else 50)
    batches = [int(b) for b in (args.batches or ("1,8" if args.quick else "1,8,16,32")).split(",")]
    dtypes = (args.dtypes or ("fp16" if args.quick else "fp16,bf16")).split(",")
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile or ("off" if args.quick else "both")]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("diffusers", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        log.info("device: %s, torch %s", torch.cuda.get_device_name(), torch.__version__)
    log.info("%dx%d, %d steps, batches %s, dtypes %s, compile %s", args.size, args.size, steps, batches, dtypes,
             compiles)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        naive_dtype = "fp16" if args.device.startswith("cuda") else "fp32"  # the model card's choice on GPU
        pipe = build_pipeline(args.device, DTYPES[dtypes[0] if args.no_naive else naive_dtype], Path(tmp))
        log.info("built random-weight SD2-inpainting pipeline in %.1f s", time.perf_counter() - t0)
        flops = flops_per_image(pipe, args.device, args.size, steps)
        device_peak = peak_flops(args.device, args.peak_tflops)
        log.info("%.1f TFLOP per image; device peak %s TFLOP/s", flops / 1e12,
                 f"{device_peak / 1e12:.0f}" if device_peak else "?")
        naive = None
        if not args.no_naive:
            naive = time_naive(pipe, args.device, args.size, steps, max(args.iters, 1))
            log.info("(a) naive pipe(), %s, batch 1, guidance 7.5: %.3f images/s", naive_dtype, naive)
        for dtype in dtypes:
            pipe.to(dtype=DTYPES[dtype])
            for compile_ in compiles:
                for batch in batches:
                    rate, used, peak = time_ours(pipe, args.device, args.size, steps, args.iters, batch, dtype,
                                                 compile_, args.compile_mode, args.vae_batch)
                    ratio = f"{rate / naive:6.2f}x" if naive else "   n/a"
                    rows.append((dtype, compile_, batch, used, rate, ratio, peak))
                    log.info("(b) ours %s compile=%s batch %d: %.3f images/s (%s of naive), peak %.1f GiB",
                             dtype, compile_, batch, rate, ratio.strip(), peak)

    print(f"\nSD2 inpainting, {args.size}x{args.size}, {steps} steps, random weights; compile mode "
          f"{args.compile_mode}, VAE batch {args.vae_batch or 'whole'}")
    if naive:
        print(f"(a) naive pipeline call ({naive_dtype}, batch 1, guidance 7.5): {naive:.3f} images/s")
    print(f"{flops / 1e12:.1f} TFLOP per image (FlopCounterMode); MFU against {device_peak / 1e12:.0f} TFLOP/s"
          if device_peak else f"{flops / 1e12:.1f} TFLOP per image; MFU needs --peak-tflops")
    print(f"{'dtype':6} {'compile':8} {'batch':>5} {'used':>5} {'images/s':>9} {'(b)/(a)':>8} {'peak GiB':>9} "
          f"{'MFU':>6}")
    for dtype, compile_, batch, used, rate, ratio, mem in rows:
        mfu = f"{rate * flops / device_peak:6.1%}" if device_peak else "   n/a"
        print(f"{dtype:6} {compile_!s:8} {batch:5d} {used:5d} {rate:9.3f} {ratio:>8} {mem:9.1f} {mfu}")


if __name__ == "__main__":
    main()
