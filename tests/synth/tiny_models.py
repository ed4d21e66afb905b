"""Tiny random-weight models built from configs, saved with save_pretrained, loaded by path.

No hub access here: each builder writes a directory that loads exactly as a hub id would
(`from_pretrained(path)`), so the generators' real loading code runs in the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

WORDS = [
    "a",
    "photo",
    "of",
    "the",
    "handwritten",
    "digit",
    "sound",
    "dog",
    "cat",
    "bird",
    "in",
    "sky",
    "blue",
    "large",
    "small",
    "big",
    "red",
    "green",
    "on",
    "with",
] + [str(i) for i in range(10)]


def _byte_chars() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def clip_tokenizer(dir_: Path):
    """CLIPTokenizer from a vocab/merges pair written to disk: single bytes, no merges."""
    from transformers import CLIPTokenizer

    dir_.mkdir(parents=True, exist_ok=True)
    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    (dir_ / "vocab.json").write_text(json.dumps(vocab))
    (dir_ / "merges.txt").write_text("#version: 0.2\n")
    (dir_ / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16}))
    return CLIPTokenizer.from_pretrained(dir_)


def tiny_stable_diffusion(path: Path) -> Path:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
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
        latent_channels=4,
        norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
    )
    tokenizer = clip_tokenizer(path.parent / (path.name + "-tok"))
    text = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=len(tokenizer) - 2,
            eos_token_id=len(tokenizer) - 1,
            pad_token_id=len(tokenizer) - 1,
            hidden_size=8,
            intermediate_size=16,
            num_attention_heads=2,
            num_hidden_layers=1,
            vocab_size=len(tokenizer),
            max_position_embeddings=16,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path)
    return path


def tiny_gpt2(path: Path, vocab_words: list[str] | None = None) -> Path:
    """GPT-2 with a BPE tokenizer trained in memory with `tokenizers` on a few prompt words."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = vocab_words or WORDS
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    # Only the corpus' own characters: a ~100-token vocabulary in which random sampling names
    # a label word now and then (and often does not, which exercises the refill path).
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=["<|endoftext|>", "<unk>"])
    corpus = [" ".join(words)] * 20 + [f"a photo of a {w} in the sky" for w in words]
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<|endoftext|>",
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(fast),
            n_positions=128,
            n_embd=16,
            n_layer=1,
            n_head=2,
            bos_token_id=fast.eos_token_id,
            eos_token_id=fast.eos_token_id,
        )
    )
    fast.save_pretrained(path)
    model.save_pretrained(path)
    return path


def tiny_speecht5(path: Path, vocoder_path: Path) -> tuple[Path, Path]:
    """SpeechT5 TTS + HiFi-GAN from small configs; the processor's sentencepiece model is trained here."""
    import sentencepiece as spm
    import torch
    from transformers import (
        SpeechT5Config,
        SpeechT5FeatureExtractor,
        SpeechT5ForTextToSpeech,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
        SpeechT5Processor,
        SpeechT5Tokenizer,
    )

    path.mkdir(parents=True, exist_ok=True)
    corpus = path / "corpus.txt"
    corpus.write_text("\n".join(["yes no up down left right on off stop go"] * 50 + WORDS))
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(path / "spm_char"),
        vocab_size=40,
        model_type="char",
        character_coverage=1.0,
        bos_id=0,
        pad_id=1,
        eos_id=2,
        unk_id=3,
        minloglevel=2,
    )
    tokenizer = SpeechT5Tokenizer(str(path / "spm_char.model"))
    mel = 8
    processor = SpeechT5Processor(SpeechT5FeatureExtractor(num_mel_bins=mel), tokenizer)
    torch.manual_seed(0)
    cfg = SpeechT5Config(
        vocab_size=len(tokenizer),
        hidden_size=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_mel_bins=mel,
        reduction_factor=2,
        speech_decoder_prenet_units=16,
        speech_decoder_postnet_units=16,
        speech_decoder_postnet_layers=2,
        speaker_embedding_dim=512,
        max_speech_positions=600,
        max_text_positions=100,
    )
    SpeechT5ForTextToSpeech(cfg).save_pretrained(path)
    processor.save_pretrained(path)
    voc = SpeechT5HifiGan(
        SpeechT5HifiGanConfig(
            model_in_dim=mel,
            upsample_initial_channel=16,
            upsample_rates=[4, 4],
            upsample_kernel_sizes=[8, 8],
            resblock_kernel_sizes=[3],
            resblock_dilation_sizes=[[1, 3]],
            sampling_rate=16000,
        )
    )
    voc.save_pretrained(vocoder_path)
    return path, vocoder_path


def roberta_tokenizer(dir_: Path):
    """RobertaTokenizer (what AudioLDM's CLAP text encoder uses) from vocab/merges files."""
    from transformers import RobertaTokenizer

    dir_.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>"])}
    for c in _byte_chars():
        vocab[c] = len(vocab)
    vocab["<mask>"] = len(vocab)
    (dir_ / "vocab.json").write_text(json.dumps(vocab))
    (dir_ / "merges.txt").write_text("#version: 0.2\n")
    (dir_ / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16}))
    return RobertaTokenizer.from_pretrained(dir_)


def tiny_audioldm(path: Path) -> Path:
    """AudioLDM: a tiny UNet with CLAP class embeddings, a 1-channel VAE over mels, a HiFi-GAN."""
    import torch
    from diffusers import AudioLDMPipeline, AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import ClapTextConfig, ClapTextModelWithProjection, SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(4, 8),
        class_embed_type="simple_projection",
        projection_class_embeddings_input_dim=8,
        class_embeddings_concat=True,
        norm_num_groups=2,
        attention_head_dim=2,
    )
    vae = AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=1,
        out_channels=1,
        latent_channels=4,
        norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
    )
    tokenizer = roberta_tokenizer(path.parent / (path.name + "-tok"))
    text = ClapTextModelWithProjection(
        ClapTextConfig(
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=1,
            hidden_size=8,
            intermediate_size=16,
            num_attention_heads=1,
            num_hidden_layers=1,
            vocab_size=len(tokenizer),
            projection_dim=8,
            max_position_embeddings=24,
        )
    )
    vocoder = SpeechT5HifiGan(
        SpeechT5HifiGanConfig(
            model_in_dim=8,
            sampling_rate=16000,
            upsample_initial_channel=8,
            upsample_rates=[8, 8],
            upsample_kernel_sizes=[16, 16],
            resblock_kernel_sizes=[3],
            resblock_dilation_sizes=[[1, 3]],
            normalize_before=False,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    AudioLDMPipeline(
        vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler, vocoder=vocoder
    ).save_pretrained(path)
    return path
