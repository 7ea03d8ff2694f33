"""The documented import path of the pipeline (README): `training.pipeline.LayeredDiffusionPipeline`.

It lives in training/ldm/pipeline.py; this module only re-exports it and nothing in the project imports it.
"""
from training.ldm.pipeline import LayeredDiffusionPipeline

__all__ = ["LayeredDiffusionPipeline"]
