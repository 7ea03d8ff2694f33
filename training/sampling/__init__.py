"""The `l2i sample` job (sampling/run.py, on the engine's job frame): prompts through the pipeline
(ldm/pipeline.py) into layered files."""
