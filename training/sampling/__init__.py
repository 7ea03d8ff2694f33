"""DDIM sampling with classifier-free guidance (sampling/ddim.py) and the `l2i sample` job (sampling/run.py),
on the engine's job frame."""
