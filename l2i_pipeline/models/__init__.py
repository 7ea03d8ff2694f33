"""Model definitions used by pipeline stages (weights always come from local files)."""
