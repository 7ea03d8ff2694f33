"""Latent diffusion on CaT2I-AE latents: frozen CLIP text encoder, SD v1 UNet, the LDM training task."""
