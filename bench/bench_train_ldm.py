"""Latent diffusion throughput: UNet training samples/s and peak memory, `l2i sample` images/s, `l2i encode` samples/s.

    python3 bench/bench_train_ldm.py                 # CPU: tiny presets (64^2 and 256^2 latents' sizes)
    python3 bench/bench_train_ldm.py --device cuda   # GPU: SD v1 UNet + paper-size CaT2I-AE + CLIP-L-sized
                                                     # text encoder, 256^2 and 512^2, bf16, batch sweep,
                                                     # with/without gradient checkpointing; FLOP/step and MFU

Random weights (speed does not depend on them). The training step is the LDM task's: frozen text
encoder, noise, UNet forward/backward, AdamW. Sampling is `LayeredDiffusionPipeline` (DDIM, CFG, decode).
Prints figures, asserts nothing. Part of bench/bench_train.py's report (`--model ldm` there).
"""
from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16, for MFU


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (Linux: KiB)


def text_encoder(size: str, device):
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, max_position_embeddings=77) if size == "clip_l" else \
        CLIPTextConfig(vocab_size=600, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, max_position_embeddings=77, bos_token_id=598, eos_token_id=599,
                       pad_token_id=599)
    return CLIPTextModel(cfg).to(device).eval().requires_grad_(False)


def bench_train(preset: str, te_size: str, latent: int, batch: int, steps: int, device, precision: str,
                checkpointing: bool) -> dict:
    from diffusers import DDPMScheduler

    from training.ldm.ddim import SD_SCHEDULE
    from training.ldm.unet import build_unet

    te = text_encoder(te_size, device)
    unet = build_unet(preset, 4, te.config.hidden_size, latent).to(device).train()
    if checkpointing:
        unet.enable_gradient_checkpointing()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    sched = DDPMScheduler.from_config(SD_SCHEDULE)
    ids = torch.randint(0, te.config.vocab_size, (batch, 77), device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    flops = None

    def step():
        with amp:
            h = te(ids)[0]
            z = torch.randn(batch, 4, latent, latent, device=device)
            noise = torch.randn_like(z)
            t = torch.randint(0, 1000, (batch,), device=device)
            loss = F.mse_loss(unet(sched.add_noise(z, noise, t), t, encoder_hidden_states=h).sample.float(), noise)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
    step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    dt = (time.perf_counter() - t0) / steps
    out = {"samples_per_s": batch / dt, "step_s": dt, "peak_mb": _peak_mb(device),
           "params_m": sum(p.numel() for p in unet.parameters()) / 1e6}
    if flops:
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        out["tflop_per_step"] = flops / 1e12
        out["mfu"] = flops / dt / (peak * 1e12) if peak and precision == "bf16" else None
    return out


def build_pipeline(device, paper: bool, latent: int, dtype) -> object:
    """A LayeredDiffusionPipeline with random weights: paper-size on GPU, tiny on CPU."""
    from training.ldm.ddim import ddim_scheduler
    from training.ldm.pipeline import LayeredDiffusionPipeline
    from training.ldm.text import build_tiny_text_encoder, load_text_encoder
    from training.ldm.unet import build_unet
    from training.models.ae import CaT2IAE

    tmp = Path(tempfile.mkdtemp())
    _, tok = load_text_encoder(build_tiny_text_encoder(tmp / "te"))
    te = text_encoder("clip_l" if paper else "tiny", "cpu")
    if paper:
        ae = CaT2IAE()
        unet = build_unet("sd_v1", 4, 768, latent)
    else:
        ae = CaT2IAE(block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=8, head_width=8,
                     mid_block_attention=False)
        unet = build_unet("tiny", 4, 32, latent)
    tok.model_max_length = 77
    pipe = LayeredDiffusionPipeline(ae=ae.eval(), unet=unet.eval(), text_encoder=te, tokenizer=tok,
                                    scheduler=ddim_scheduler(), latent_scale=0.2)
    return pipe.to(device, dtype)


def bench_sample(pipe, batch: int, steps: int, guidance: float, device) -> float:
    prompts = ["a photo of a dog on the grass"] * batch
    pipe(prompts[:1], [0], steps=2, guidance=guidance)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    pipe(prompts, list(range(batch)), steps=steps, guidance=guidance)
    _sync(device)
    return batch / (time.perf_counter() - t0)


def bench_encode(device, paper: bool, res: int, batch: int, iters: int) -> float:
    from training.latents.codec import posterior
    from training.models.ae import CaT2IAE

    ae = (CaT2IAE() if paper else CaT2IAE(block_out_channels=(8, 16, 16, 16), layers_per_block=1,
                                          norm_num_groups=8, head_width=8, mid_block_attention=False))
    ae = ae.to(device).eval()
    x = {k: torch.rand(batch, c, res, res, device=device) * 2 - 1 for k, c in
         (("fg", 3), ("bg", 3), ("image", 3), ("mask", 1))}
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    with amp:
        posterior(ae, x)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            posterior(ae, x)
        _sync(device)
    return batch * iters / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: tiny models on a shared "
                                                          "CPU only contend with more; 0 = torch's default)")
    p.add_argument("--quick", action="store_true", help="fewer configurations")
    p.add_argument("--l2i", help="also time `l2i encode` end to end (tar read + PNG decode + AE) on these L2I shards")
    a = p.parse_args()
    run(torch.device(a.device), a.quick, a.l2i, a.threads)


def run(device: torch.device, quick: bool = False, l2i: str | None = None, threads: int = 1) -> None:
    """Every LDM figure on one device (bench_train.py calls this for CPU, and for CUDA when present)."""
    if threads:
        torch.set_num_threads(threads)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    print(f"device {torch.cuda.get_device_name() if cuda else 'cpu'}, torch threads {torch.get_num_threads()}")

    print("\nUNet training step (text encoder + noise + UNet fwd/bwd + AdamW)")
    print(f"{'unet':<7}{'res':>5}{'batch':>6}{'prec':>6}{'ckpt':>6}{'samples/s':>11}{'step s':>9}{'peak MB':>10}"
          f"{'TFLOP/step':>11}{'MFU':>7}")
    if cuda:
        grid = [(res, b, prec, ck) for res in (256, 512) for b in ((8, 32) if quick else (8, 16, 32, 64))
                for prec in ("bf16",) for ck in (False, True)]
        preset, te_size, steps = "sd_v1", "clip_l", 5
    else:
        grid = [(64, 8, "fp32", False), (256, 2, "fp32", False)] + ([] if quick else [(64, 8, "fp32", True)])
        preset, te_size, steps = "tiny", "tiny", 3
    for res, b, prec, ck in grid:
        try:
            r = bench_train(preset, te_size, res // 8, b, steps, device, prec, ck)
        except torch.OutOfMemoryError:
            print(f"{preset:<7}{res:>5}{b:>6}{prec:>6}{ck!s:>6}  out of memory")
            torch.cuda.empty_cache()
            continue
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") else "-"
        tf = f"{r['tflop_per_step']:.2f}" if r.get("tflop_per_step") else "-"
        print(f"{preset:<7}{res:>5}{b:>6}{prec:>6}{ck!s:>6}{r['samples_per_s']:>11.2f}{r['step_s']:>9.3f}"
              f"{r['peak_mb']:>10.0f}{tf:>11}{mfu:>7}")

    print("\n`l2i sample`: DDIM 50 steps, CFG 7.5, decode (images/s)")
    res = 256 if cuda else 64
    dtypes = [("bf16", torch.bfloat16), ("fp32", torch.float32)] if cuda else [("fp32", torch.float32)]
    for name, dtype in dtypes:
        pipe = build_pipeline(device, cuda, res // 8, dtype)
        for b in ((1, 8, 32) if cuda else (1, 4)):
            print(f"  {res}^2 {name} batch {b:>3}: {bench_sample(pipe, b, 50, 7.5, device):8.2f} images/s")

    print("\n`l2i encode`: CaT2I-AE posterior (samples/s, decode of PNGs not included)")
    for res in ((256, 512) if cuda else (64, 256)):
        b = 32 if cuda else 8
        print(f"  {res}^2 batch {b}: {bench_encode(device, cuda, res, b, 5 if cuda else 2):8.1f} samples/s")
    if l2i:
        print(f"  end to end on {l2i}: {bench_encode_job(l2i, device, cuda):8.1f} samples/s")


def bench_encode_job(l2i: str, device, paper: bool) -> float:
    """`l2i encode --runner local` on real shards into a temp dir (one process)."""
    from l2i_pipeline.core.storage import open_store
    from training.latents.encode import EncodeJob, encode
    from training.models.ae import CaT2IAE

    tmp = Path(tempfile.mkdtemp())
    ae = CaT2IAE() if paper else CaT2IAE(block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=8,
                                         head_width=8, mid_block_attention=False)
    ae.save_pretrained(tmp / "ae")
    res = 256 if paper else 64
    job = EncodeJob(open_store(l2i, {}), open_store(str(tmp / "lat"), {}), str(tmp / "ae"), resolution=res,
                    batch_size=32 if paper else 8, device=device.type)
    return encode(job)["samples_per_s"] or 0.0


if __name__ == "__main__":
    main()
