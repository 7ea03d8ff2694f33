"""DDIM sampling with classifier-free guidance (sampling/ddim.py) and the `l2i sample` runners (sampling/run.py)."""
