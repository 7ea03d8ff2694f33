"""CaT2I-AE training: the task (task.py), its losses and the LPIPS weights they load."""
