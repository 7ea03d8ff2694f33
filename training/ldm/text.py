"""The frozen CLIP text encoder and its tokenizer, from a local dir in Stable Diffusion's layout.

`DIR/text_encoder/` (transformers `CLIPTextModel`: config.json + model.safetensors) and `DIR/tokenizer/`
(vocab.json + merges.txt, or tokenizer.json). No hub: a missing dir or file is one error naming it.
`build_tiny_text_encoder` writes a few-thousand-parameter pair in that layout for tests and the demo.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from l2i_pipeline.core.errors import NotFound

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_warned_truncation = False


def check_text_encoder_dir(path: str | Path) -> Path:
    """The dir holding text_encoder/ and tokenizer/, or NotFound naming the first missing piece."""
    root = Path(path)
    where = "SD v1's text_encoder/ and tokenizer/ (CompVis/stable-diffusion-v1-4 or openai/clip-vit-large-patch14)"
    if not root.is_dir():
        raise NotFound(f"text encoder dir not found: {root} (expected {where})")
    te, tok = root / "text_encoder", root / "tokenizer"
    for d in (te, tok):
        if not d.is_dir():
            raise NotFound(f"text encoder dir {root} has no {d.name}/ (expected {where})")
    if not (te / "config.json").is_file():
        raise NotFound(f"missing file: {te / 'config.json'}")
    if not any((te / f).is_file() for f in WEIGHT_FILES):
        raise NotFound(f"missing file: {te / WEIGHT_FILES[0]} (text encoder weights)")
    if not (tok / "tokenizer.json").is_file():
        for f in ("vocab.json", "merges.txt"):
            if not (tok / f).is_file():
                raise NotFound(f"missing file: {tok / f} (tokenizer)")
    return root


def load_text_encoder(path: str | Path, device: str | torch.device = "cpu"):
    """(CLIPTextModel, CLIPTokenizer), frozen and in eval mode."""
    from transformers import CLIPTextModel, CLIPTokenizer

    root = check_text_encoder_dir(path)
    tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
    encoder = CLIPTextModel.from_pretrained(root / "text_encoder").to(device).eval()
    encoder.requires_grad_(False)
    return encoder, tokenizer


def tokenize(tokenizer, prompts: list[str]) -> torch.Tensor:
    """Token ids padded to the tokenizer's length; an over-long prompt is truncated (warned once)."""
    global _warned_truncation
    n = tokenizer.model_max_length
    if not _warned_truncation:
        long = [p for p in prompts if len(tokenizer(p, truncation=False, verbose=False).input_ids) > n]
        if long:
            _warned_truncation = True
            log.warning("prompt longer than the tokenizer's %d tokens is truncated: %r", n, long[0][:80])
    return tokenizer(prompts, padding="max_length", max_length=n, truncation=True, return_tensors="pt").input_ids


@torch.no_grad()
def encode_prompts(text_encoder, tokenizer, prompts: list[str]) -> torch.Tensor:
    """The last hidden states (B, L, D) that SD's UNet cross-attends to."""
    ids = tokenize(tokenizer, list(prompts)).to(text_encoder.device)
    return text_encoder(ids)[0]


# ------------------------------------------------------------------ tiny pair for tests and the demo

def _byte_chars() -> list[str]:
    """GPT-2/CLIP's printable stand-in for each of the 256 bytes (byte-level BPE's base alphabet)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def tiny_vocab(words: tuple[str, ...] = ("the", "a", "of", "and", "on", "in", "photo", "dog", "cat")):
    """A CLIP-style byte-level BPE vocab (every byte, alone and word-final) with merges spelling `words`."""
    base = _byte_chars()
    tokens = base + [c + "</w>" for c in base]
    merges: list[str] = []
    for w in words:
        parts = list(w[:-1]) + [w[-1] + "</w>"]
        while len(parts) > 1:
            merges.append(f"{parts[0]} {parts[1]}")
            parts = [parts[0] + parts[1]] + parts[2:]
            if parts[0] not in tokens:
                tokens.append(parts[0])
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    return vocab, list(dict.fromkeys(merges))


def build_tiny_text_encoder(out_dir: str | Path, hidden: int = 32, layers: int = 2, max_length: int = 77,
                            seed: int = 0) -> Path:
    """Write a random tiny CLIP text encoder + tokenizer in SD's layout; returns `out_dir`."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    out = Path(out_dir)
    tok_dir = out / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    vocab, merges = tiny_vocab()
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": max_length, "do_lower_case": True}))
    CLIPTokenizer.from_pretrained(tok_dir).save_pretrained(tok_dir)  # as SD ships it, plus tokenizer.json
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, max_position_embeddings=max_length, projection_dim=hidden,
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"])
    CLIPTextModel(config).save_pretrained(out / "text_encoder")
    return out
