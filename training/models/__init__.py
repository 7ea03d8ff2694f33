"""Models trained here: CaT2I-AE (and the discriminator of its GAN loss)."""
