"""The `l2i sample` runners (sampling/run.py): prompts through the pipeline (ldm/pipeline.py) into layered files."""
