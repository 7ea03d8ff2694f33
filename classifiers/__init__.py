"""Quality classifiers (paper section III-D): EfficientNet-b0, last layer only, one per task.

`mask` judges the saliency mask m against the image I; `inpaint` judges the inpainted background B.
Modules import torch lazily where they can, so `l2i --help` stays fast.
"""
