"""The training half of `make demo`: tiny AE -> `l2i encode` -> tiny LDM -> `l2i sample` (.ora files), on CPU.

Everything the models need is built in the work dir (the tiny text encoder and tokenizer); the AE's
LPIPS uses a random VGG trunk (no weights can be downloaded here), so the demo shows the mechanics, not
the paper's quality. `run_training_demo(l2i_dir, workdir)` returns where everything is.
"""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

AE_STEPS, LDM_STEPS = 60, 150
PROMPTS = ["a photo of a dog", "a cat on the grass", "a red flower in the garden"]


def run_training_demo(l2i_dir: str | Path, workdir: str | Path, ae_steps: int = AE_STEPS,
                      ldm_steps: int = LDM_STEPS, prompts: list[str] | None = None) -> dict[str, str]:
    """Train the tiny AE and LDM on `l2i_dir`, sample `prompts`; rerunning resumes/skips what is done."""
    from l2i_pipeline.core.storage import open_store
    from training.ae.task import AETask
    from training.jobs.runner import TrainJob, run_training
    from training.latents.encode import EncodeJob, encode
    from training.ldm.task import LDMTask, ldm_sets
    from training.ldm.text import build_tiny_text_encoder
    from training.sampling.run import SampleSettings, sample

    l2i_dir, work = Path(l2i_dir), Path(workdir)
    runs = work / "runs"
    common = ["log.progress=false", "data.num_workers=0", "data.test_fraction=0.1"]
    text_encoder = work / "text_encoder"
    if not (text_encoder / "text_encoder" / "config.json").is_file():
        build_tiny_text_encoder(text_encoder)

    log.info("demo: training the tiny CaT2I-AE (%d steps)", ae_steps)
    run_training(AETask, TrainJob(str(l2i_dir), str(runs / "ae"), preset="tiny", max_failures=0, sets=common + [
        f"train.steps={ae_steps}", "lpips.pnet_rand=true", f"ckpt.every={ae_steps}", f"val.every={ae_steps}",
        "log.every=10", "loss.disc_start=30"]))

    log.info("demo: encoding the L2I shards with it")
    latents = work / "latents"
    enc = encode(EncodeJob(open_store(str(l2i_dir), {}), open_store(str(latents), {}), str(runs / "ae" / "ae"),
                           resolution=64, test_fraction=0.1, batch_size=8))

    log.info("demo: training the tiny LDM (%d steps)", ldm_steps)
    run_training(LDMTask, TrainJob(str(latents), str(runs / "ldm"), preset="tiny", max_failures=0, sets=[
        *ldm_sets(str(runs / "ae" / "ae"), str(text_encoder)), *common, f"train.steps={ldm_steps}",
        f"ckpt.every={ldm_steps}", f"val.every={ldm_steps}", "log.every=25", "train.batch_size=8", "train.lr=1e-3"]))

    log.info("demo: sampling %d prompts", len(prompts or PROMPTS))
    pipeline, samples = runs / "ldm" / "pipeline", work / "samples"
    result = sample(pipeline, samples, prompts or PROMPTS, n=1, seed=0,
                    settings=SampleSettings(steps=20, guidance=3.0), batch_size=3, device="cpu")
    ora = sorted(str(p) for p in samples.glob("*/layers.ora"))
    return {"ae": str(runs / "ae" / "ae"), "ae_run": str(runs / "ae"), "latents": str(latents),
            "latent_std": f"{enc['latent_std']:.4f}", "ldm_run": str(runs / "ldm"), "pipeline": str(pipeline),
            "text_encoder": str(text_encoder), "samples": str(samples), "index": result["index"],
            "ora": ora[0] if ora else "", "n_ora": str(len(ora))}


def format_summary(paths: dict[str, str]) -> str:
    rows = [("CaT2I-AE (tiny)", paths["ae"]), ("latents", f"{paths['latents']} (std {paths['latent_std']})"),
            ("LDM run", paths["ldm_run"]), ("pipeline", paths["pipeline"]),
            ("samples", f"{paths['samples']} ({paths['n_ora']} .ora files, index {paths['index']})"),
            ("e.g.", paths["ora"])]
    return "\n".join(f"{k + ':':<17}{v}" for k, v in rows)
