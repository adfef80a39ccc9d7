"""The real diffusers code path, on a tiny random pipeline built from config (as diffusers'
own tests do), saved to a folder and loaded back through AutoPipelineForText2Image."""

import json

import numpy as np
import pytest

from convir.errors import GenerationError, ModelError
from convir.models.generator import DiffusersGenerator, Generator


def _byte_chars():
    """The 256 printable stand-ins byte-level BPE uses for bytes (GPT-2's mapping)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def _tiny_tokenizer_files(folder):
    chars = _byte_chars()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder / "vocab.json", folder / "merges.txt", len(vocab)


@pytest.fixture(scope="module")
def tiny_pipeline_dir(tmp_path_factory):
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-sd")
    vocab, merges, n_vocab = _tiny_tokenizer_files(folder)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8,
        norm_num_groups=2,
        attention_head_dim=2,
    )
    vae = AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=2,
        sample_size=16,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=8,
            intermediate_size=16,
            num_attention_heads=2,
            num_hidden_layers=2,
            vocab_size=n_vocab,
            max_position_embeddings=77,
        )
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=CLIPTokenizer(str(vocab), str(merges), model_max_length=77),
        scheduler=DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    out = folder / "pipeline"
    pipe.save_pretrained(out)
    return out


def test_tiny_pipeline_loads_from_folder_and_generates(tiny_pipeline_dir):
    gen = DiffusersGenerator(str(tiny_pipeline_dir), steps=2, guidance=1.0, batch_size=3)
    assert isinstance(gen, Generator)
    out = gen.generate(["a red circle", "a blue square"], n_per_prompt=2, seed=7)
    assert [len(x) for x in out] == [2, 2]
    assert out[0][0].size == (16, 16)
    again = gen.generate(["a blue square"], n_per_prompt=2, seed=7 + 1000)
    # seeds are per prompt and image: the same image whatever else shares the batch
    assert np.array_equal(np.asarray(out[1][0]), np.asarray(again[0][0]))
    assert not np.array_equal(np.asarray(out[0][0]), np.asarray(out[0][1]))


def test_generator_rejects_bad_prompts(tiny_pipeline_dir):
    gen = DiffusersGenerator(str(tiny_pipeline_dir), steps=1, guidance=1.0)
    with pytest.raises(GenerationError, match="empty"):
        gen.generate([])
    with pytest.raises(GenerationError, match="list"):
        gen.generate("a red circle")


def test_missing_pipeline_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="--generator"):
        DiffusersGenerator(str(tmp_path / "nope" / "pipe"))
