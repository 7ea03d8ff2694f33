"""Training on LAION-L2I shards: CaT2I-AE, latent diffusion, sampling, evaluation (docs/TRAINING.md)."""
