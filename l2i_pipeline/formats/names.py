"""Member names: what a sample holds in a WebDataset tar, and the files beside it (docs/ARCHITECTURE.md).

A tar member is `KEY.NAME`; NAME is one of the constants below, or for layer k >= 2 of a peeled sample
(`layers.count` > 1) the same layer member prefixed `l{k}.` (`member(k, FG)` = "l2.fg.png").
"""
from __future__ import annotations

# ---------------------------------------------------------------- one sample of an L2I shard
JPG = "jpg"  # I: the decoded source cropped to the working resolution, re-encoded once
FG = "fg.png"  # F: I where m > layers.threshold, black elsewhere
MASK = "mask.png"  # m: the saliency map, 8-bit (mask8)
INPAINT_MASK = "inpaint_mask.png"  # m~: the binarised mask dilated, 0/255
BG = "bg.png"  # B: inpainted; equal to I outside m~
ALPHA = "alpha.png"  # layers.alpha=matting: the soft alpha, 8-bit
FG_RGBA = "fg_rgba.png"  # layers.alpha=matting: F' with the alpha
TXT = "txt"  # caption
JSON = "json"  # key, url, LAION columns, sizes, measures, settings, scores; `depth` and `peel` when peeled

LAYER_MEMBERS = (FG, MASK, INPAINT_MASK, BG)  # every layer has these
ALPHA_MEMBERS = (ALPHA, FG_RGBA)  # layers.alpha=matting only
MEMBERS = (JPG, FG, MASK, INPAINT_MASK, BG, TXT, JSON)  # the paper's members, in their order in the tar

# the image member of a raw (img2dataset) shard: the first of these a sample has
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tiff", "img")


def prefix(k: int) -> str:
    """Member-name prefix of layer k (1-based): '' for the paper's layer, 'l{k}.' after it."""
    return "" if k == 1 else f"l{k}."


def member(k: int, name: str) -> str:
    """The name of layer k's member `name` (one of LAYER_MEMBERS or ALPHA_MEMBERS)."""
    return prefix(k) + name


def source_member(k: int) -> str:
    """The image layer k was cut from: I (JPG) for layer 1, B_{k-1} after it."""
    return JPG if k == 1 else member(k - 1, BG)


# ---------------------------------------------------------------- the files of a shard
TAR = ".tar"  # the samples (ok ones only for L2I shards)
PARQUET = ".parquet"  # the index: one row per input sample (index.INDEX_SCHEMA)
MARKER = "_stats.json"  # written last: counts, and the size and sha256 of every file it vouches for

# ---------------------------------------------------------------- latent shards (`l2i encode`)
SAFETENSORS = ".safetensors"  # tensors `mean` and `std` of q(z|x), float32 N x C x h x w; then PARQUET, MARKER

# ---------------------------------------------------------------- `l2i sample`: OUT/<id>/NAME per sample
SAMPLES_INDEX = "samples.parquet"  # one row per sample: id, prompt, seed, ...
IMAGE = "image.png"  # the auxiliary I^ (or a plain text-to-image sample)
COMPOSITE = "composite.png"  # the paper's C^ = m^F^ + (1 - m^)B^, what `l2i eval` scores
ORA, PSD = "layers.ora", "layers.psd"
# and the layer members FG, BG, MASK, FG_RGBA above, with the same meaning
