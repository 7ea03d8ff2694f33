"""AE latents encoded once (`l2i encode`) and streamed to the LDM instead of re-running the encoder each step."""
