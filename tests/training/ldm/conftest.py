"""Tiny models built in code, saved, and loaded back with the production loaders."""
import pytest
import torch


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
    from training.ldm.codec import SDStackAE
    from training.ldm.text import load_text_encoder
    from training.ldm.unet import build_unet
    from training.pipeline import LayeredDiffusionPipeline
    from training.sampling.ddim import ddim_scheduler

    te, tok = load_text_encoder(text_encoder_dir)
    ae = SDStackAE.from_sd_vae(tiny_sd_vae())
    torch.manual_seed(1)
    unet = build_unet("tiny", 12, 32, 8)
    pipe = LayeredDiffusionPipeline(ae=ae, unet=unet, text_encoder=te, tokenizer=tok, scheduler=ddim_scheduler(),
                                    latent_scale=0.5)
    out = tmp_path_factory.mktemp("pipe") / "pipeline"
    pipe.save_pretrained(out)
    return out
