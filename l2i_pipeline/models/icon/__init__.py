"""ICON salient-object detection: network, strict official-checkpoint loading, batched prediction."""
from .loading import IconWeightsError, load_icon, read_state_dict, sha256_file
from .network import ICON, VARIANTS, WEIGHTS_WHERE, variant_spec
from .predict import IconSaliency, preprocess, resolve_device

__all__ = ["ICON", "VARIANTS", "WEIGHTS_WHERE", "IconSaliency", "IconWeightsError", "load_icon", "preprocess",
           "read_state_dict", "resolve_device", "sha256_file", "variant_spec"]
