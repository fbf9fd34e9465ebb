"""Stable Diffusion 1.5's published component configs, built with random weights (benchmarks only).

The configs are those of ``stable-diffusion-v1-5/stable-diffusion-v1-5`` (formerly
``runwayml/stable-diffusion-v1-5``): ``unet/config.json``, ``vae/config.json``,
``text_encoder/config.json`` (the text tower of CLIP ViT-L/14) and ``scheduler/scheduler_config.json``,
written out here so that a model of the paper's size is built without any download. Its weights are
random: speed and memory are SD 1.5's, the images are noise. Nothing built here is pretrained.

The tokenizer is a byte-level CLIP vocabulary without merges (every character is a token), written to
a temporary folder and read back by ``CLIPTokenizer``: its ids (0 .. 513) are in range of the 49,408
embeddings, and prompts pad to CLIP's 77 tokens as SD 1.5's do.

Example::

    from accelerate import init_empty_weights

    with init_empty_weights():  # shapes only: no memory, no time
        unet = build_unet()
    sum(p.numel() for p in unet.parameters())  # 859_520_964 == PARAMETER_COUNTS["unet"]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "PARAMETER_COUNTS",
    "RANDOM_SD15_SHAPES",
    "SCHEDULER_CONFIG",
    "TEXT_ENCODER_CONFIG",
    "UNET_CONFIG",
    "VAE_CONFIG",
    "build_text_encoder",
    "build_tokenizer",
    "build_unet",
    "build_vae",
]

RANDOM_SD15_SHAPES = "random-sd15-shapes"
"""``StableDiffusionLoRA(weights=...)``: SD 1.5's shapes with random weights instead of a checkpoint."""

UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
"""``UNet2DConditionModel`` of SD 1.5 (``unet/config.json``; diffusers defaults fill the rest)."""

VAE_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
"""``AutoencoderKL`` of SD 1.5 (``vae/config.json``): 8x downsampling to 4 latent channels."""

TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "vocab_size": 49408,
}
"""``CLIPTextConfig`` of SD 1.5's text encoder (CLIP ViT-L/14's text tower, ``text_encoder/config.json``)."""

SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}
"""SD 1.5's ``scheduler/scheduler_config.json`` (read by every sampler's ``from_config``)."""

PARAMETER_COUNTS: dict[str, int] = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}
"""Parameters of SD 1.5's published components (about 859.5M, 83.7M and 123.1M)."""


def build_unet():
    """SD 1.5's UNet with random weights (build under ``init_empty_weights`` for shapes only)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**UNET_CONFIG)


def build_vae():
    """SD 1.5's VAE with random weights."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(**VAE_CONFIG)


def build_text_encoder():
    """SD 1.5's CLIP ViT-L/14 text encoder with random weights."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**TEXT_ENCODER_CONFIG))


def _byte_to_unicode() -> list[str]:
    """GPT-2 / CLIP's reversible map from the 256 bytes to printable characters, in byte order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def build_tokenizer():
    """An offline ``CLIPTokenizer``: byte-level vocabulary, no merges, CLIP's special tokens, 77 tokens."""
    from transformers import CLIPTokenizer

    chars = _byte_to_unicode()
    vocab = {c: i for i, c in enumerate(chars)} | {c + "</w>": len(chars) + i for i, c in enumerate(chars)}
    vocab |= {"<|startoftext|>": 2 * len(chars), "<|endoftext|>": 2 * len(chars) + 1}
    with tempfile.TemporaryDirectory(prefix="sd15-tokenizer-") as folder:
        (Path(folder) / "vocab.json").write_text(json.dumps(vocab))
        (Path(folder) / "merges.txt").write_text("#version: 0.2\n")
        (Path(folder) / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}))
        return CLIPTokenizer.from_pretrained(folder)
