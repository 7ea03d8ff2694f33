"""The foundation every training subpackage stands on: config, run dirs and stores, checkpoints, the loop."""
