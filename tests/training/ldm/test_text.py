"""Text encoder loading: SD layout, clear errors, truncation; the tiny builder round-trips."""
import logging

import pytest
import torch

from l2i_pipeline.core.errors import NotFound
from training.ldm import text


@pytest.fixture(scope="module")
def te_dir(tmp_path_factory):
    return text.build_tiny_text_encoder(tmp_path_factory.mktemp("te"))


def test_tiny_encoder_loads_in_sd_layout(te_dir):
    assert (te_dir / "tokenizer" / "vocab.json").is_file() and (te_dir / "tokenizer" / "merges.txt").is_file()
    encoder, tokenizer = text.load_text_encoder(te_dir)
    assert not any(p.requires_grad for p in encoder.parameters())
    ids = tokenizer("a photo of the dog").input_ids
    assert tokenizer.convert_ids_to_tokens(ids)[1:-1] == ["a</w>", "photo</w>", "of</w>", "the</w>", "dog</w>"]
    h = text.encode_prompts(encoder, tokenizer, ["a dog", ""])
    assert h.shape == (2, 77, 32)
    assert not torch.equal(h[0], h[1])


@pytest.mark.parametrize("remove", ["", "text_encoder", "tokenizer", "text_encoder/model.safetensors",
                                    "text_encoder/config.json", "tokenizer/merges.txt"])
def test_missing_dir_or_file_is_named(tmp_path, remove):
    import shutil

    d = text.build_tiny_text_encoder(tmp_path / "te")
    if remove == "":
        d = tmp_path / "nowhere"
    else:
        target = d / remove
        if remove.startswith("tokenizer/"):
            (d / "tokenizer" / "tokenizer.json").unlink()
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(NotFound) as e:
        text.load_text_encoder(d)
    assert (remove.split("/")[-1] or "nowhere") in str(e.value)


def test_long_prompt_truncated_with_one_warning(te_dir, caplog, monkeypatch):
    monkeypatch.setattr(text, "_warned_truncation", False)
    _, tokenizer = text.load_text_encoder(te_dir)
    long = " ".join(["dog"] * 200)
    with caplog.at_level(logging.WARNING):
        ids = text.tokenize(tokenizer, [long])
        text.tokenize(tokenizer, [long])
    assert ids.shape == (1, 77)
    assert sum("truncated" in r.message for r in caplog.records) == 1
