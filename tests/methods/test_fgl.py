"""FGL (Zhang, Qi, Zhao): client prompts, upload accounting, server apportioning, the loop's
server hook, and `simulate --variants fgl` end to end with --backend local.

The captioner is a random-weight ViT + GPT-2 VisionEncoderDecoderModel built from tiny configs,
with a BPE tokenizer trained in memory, saved with save_pretrained and loaded by path exactly as
a hub id would be (no hub access here)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from gptfl_ray.cli.main import app
from gptfl_ray.methods.client_prompts import (
    ClientPromptBuilder,
    ClientUpload,
    build_uploads,
    encode_prompts,
    prompt_spec,
    to_pil,
)
from gptfl_ray.methods.fgl import apportion, server_prompt_rows

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Two shared cores: intra-op threads only fight each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    from gptfl_ray.data.registry import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="module")
def parts(digits):
    from gptfl_ray.data.partition import partition

    return partition(digits.y_train, 6, "dirichlet", seed=0, alpha=0.1, min_client_size=2)


def tiny_captioner(path):
    """ViT encoder + GPT-2 decoder, 16-d, one layer each; a ~60-token BPE vocabulary."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GPT2Config,
        PreTrainedTokenizerFast,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    words = "a photo of the handwritten digit number small large with white black on paper".split()
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        [" ".join(words)] * 20, trainers.BpeTrainer(vocab_size=80, special_tokens=["<|endoftext|>", "<unk>"])
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<|endoftext|>",
    )
    torch.manual_seed(0)
    enc = ViTConfig(
        image_size=16,
        patch_size=8,
        num_channels=3,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    dec = GPT2Config(
        vocab_size=len(fast),
        n_positions=32,
        n_embd=16,
        n_layer=1,
        n_head=2,
        add_cross_attention=True,
        is_decoder=True,
        bos_token_id=fast.eos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id = cfg.pad_token_id = cfg.eos_token_id = fast.eos_token_id
    model = VisionEncoderDecoderModel(config=cfg)
    for k in ("decoder_start_token_id", "pad_token_id", "eos_token_id"):
        setattr(model.generation_config, k, fast.eos_token_id)
    model.generation_config.min_new_tokens = 2  # random weights may stop at once; a caption has words
    model.save_pretrained(path)
    fast.save_pretrained(path)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def captioner(tmp_path_factory):
    return str(tiny_captioner(tmp_path_factory.mktemp("models") / "tiny-captioner"))


def test_class_prompts_carry_each_clients_exact_counts(digits, parts):
    spec = prompt_spec(digits, "class", seed=0)
    uploads = build_uploads(spec, digits.x_train, digits.y_train, parts, backend="local")
    assert [u.client_id for u in uploads] == list(range(len(parts)))
    for up, idx in zip(uploads, parts):
        truth = Counter(digits.class_names[int(c)] for c in digits.y_train[idx])
        assert {p["label"]: p["count"] for p in up.prompts} == dict(truth)
        assert len(up.prompts) == len(truth)  # one prompt per local class
        for p in up.prompts:
            assert p["label"] in p["prompt"]
    assert sum(p["count"] for u in uploads for p in u.prompts) == len(digits.y_train)


def test_upload_bytes_are_the_prompts_utf8_json():
    # A non-ASCII class name: characters and bytes differ, so only the UTF-8 length passes.
    up = ClientUpload(3, "class", [{"label": "café", "prompt": "a photo of a café", "count": 2}])
    body = {"style": "class", "prompts": [{"label": "café", "prompt": "a photo of a café", "count": 2}]}
    expected = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    assert up.nbytes == expected == len(up.payload()) == len(encode_prompts(body))
    assert expected == len(json.dumps(body, ensure_ascii=False, separators=(",", ":"))) + 2  # two é, two bytes each
    assert json.loads(up.payload()) == body


@pytest.mark.parametrize(
    "weights, total, expected",
    [
        ([3, 1], 8, [6, 2]),
        ([1, 1, 2], 8, [2, 2, 4]),
        ([5, 0, 5], 3, None),  # one 1.5/1.5 tie: sums to 3, the zero weight gets nothing
    ],
)
def test_apportion(weights, total, expected):
    got = apportion(weights, total, seed=0)
    assert got.sum() == total
    if expected is not None:
        assert got.tolist() == expected
    else:
        assert got[1] == 0 and sorted(got.tolist()) == [0, 1, 2]


def test_server_rows_scale_counts_to_the_budget(digits):
    ups = [
        ClientUpload(
            0,
            "class",
            [
                {"label": "1", "prompt": "a handwritten digit 1", "count": 30},
                {"label": "2", "prompt": "a handwritten digit 2", "count": 10},
            ],
        ),
        ClientUpload(1, "class", [{"label": "1", "prompt": "the number 1 written by hand", "count": 10}]),
    ]
    rows = server_prompt_rows(ups, digits, per_class=10, seed=0)
    assert len(rows) == 20  # 10 per class that some client holds
    by_prompt = Counter(r["prompt"].split(",")[0] for r in rows)
    assert by_prompt == {"a handwritten digit 1": 12, "a handwritten digit 2": 4, "the number 1 written by hand": 4}
    assert all(1 <= r["guidance"] <= 5 and r["label_name"] == digits.class_names[r["label"]] for r in rows)
    with pytest.raises(ValueError, match="client 1"):
        server_prompt_rows(
            [ups[0], ClientUpload(1, "class", [{"label": "eleven", "prompt": "x", "count": 1}])], digits, 5, 0
        )


def test_instance_prompts_caption_every_local_sample(digits, parts, captioner):
    small = [p[:5] for p in parts[:3]]  # 15 samples keep the random captioner quick
    spec = prompt_spec(digits, "instance", seed=0, captioner=captioner, caption_tokens=4)
    uploads = build_uploads(spec, digits.x_train, digits.y_train, small, backend="local")
    for up, idx in zip(uploads, small):
        assert up.style == "instance" and len(up.prompts) == len(idx)
        assert [p["label"] for p in up.prompts] == [digits.class_names[int(c)] for c in digits.y_train[idx]]
        for p in up.prompts:
            head, _, caption = p["prompt"].partition(", ")
            assert p["label"] in head and caption.strip()  # label template, then the model's caption
    # Deterministic: the same client builds the same bytes again.
    again = ClientPromptBuilder(spec).run(digits.x_train, digits.y_train, small, [1])[0]
    assert again.payload() == uploads[1].payload()
    # 8x8 digits are upsampled (bilinear, grey levels kept) before the captioner sees them.
    img = to_pil(digits.x_train[0], digits.max_value, 64)
    assert img.size == (64, 64) and img.mode == "RGB"


@pytest.mark.ray
def test_ray_actor_pool_builds_the_same_uploads_as_the_local_loop(digits, parts, captioner):
    """Prompts are made inside client executors (Ray actors, captioner loaded once per actor)."""
    import ray

    from gptfl_ray.ray_runtime import ensure_ray

    small = [p[:3] for p in parts]
    spec = prompt_spec(digits, "instance", seed=0, captioner=captioner, caption_tokens=4)
    local = build_uploads(spec, digits.x_train, digits.y_train, small, backend="local")
    started = ensure_ray(num_cpus=2)
    try:
        on_ray = build_uploads(spec, digits.x_train, digits.y_train, small, backend="ray", num_actors=2, client_cpus=1)
        classes = build_uploads(
            prompt_spec(digits, "class", 0), digits.x_train, digits.y_train, parts, backend="ray", num_actors=2
        )
    finally:
        if started:
            ray.shutdown()
    assert [u.payload() for u in on_ray] == [u.payload() for u in local]
    assert [u.payload() for u in classes] == [
        u.payload() for u in build_uploads(prompt_spec(digits, "class", 0), digits.x_train, digits.y_train, parts)
    ]


def test_instance_prompts_refuse_audio_and_bad_styles():
    from gptfl_ray.data.base import Dataset
    from gptfl_ray.errors import ConfigError

    audio = Dataset(
        name="clips",
        modality="audio",
        class_names=("yes", "no"),
        x_train=np.zeros((2, 16), np.float32),
        y_train=np.array([0, 1]),
        x_test=np.zeros((2, 16), np.float32),
        y_test=np.array([0, 1]),
        max_value=1.0,
    )
    with pytest.raises(ConfigError, match="fgl.prompts"):
        prompt_spec(audio, "instance", 0)
    with pytest.raises(ConfigError, match="fgl.prompts"):
        prompt_spec(audio, "embedding", 0)
    assert prompt_spec(audio, "class", 0).kind in ("speech", "sound")


def test_server_hook_runs_after_every_update(digits, parts, tmp_path):
    from gptfl_ray.config import federate_config
    from gptfl_ray.fl.loop import run_federation

    cfg = federate_config(
        {},
        {
            "clients": 6,
            "rounds": 2,
            "clients_per_round": 2,
            "local_epochs": 1,
            "backend": "local",
            "model": "mlp",
            "checkpoint_every": 0,
        },
    )
    seen = []

    def hook(params, r):
        seen.append(r)
        return np.zeros_like(params)

    res = run_federation(cfg, digits, parts, tmp_path / "fl", server_hook=hook)
    assert seen == [1, 2] and not res.params.any()
    assert res.history[-1]["cum_bytes"] == 2 * (2 + 2) * res.num_params * 4  # the hook moves no bytes


@pytest.mark.slow
def test_simulate_fgl_one_shot_and_rounds_local(tmp_path):
    run = tmp_path / "run"
    preset = tmp_path / "local.toml"
    preset.write_text('[generate]\nengine = "local"\n')  # no Ray anywhere: --backend local end to end
    res = runner.invoke(
        app,
        [
            "simulate",
            "--variants",
            "fgl",
            "--fgl-rounds",
            "2",
            "--server-finetune-epochs",
            "1",
            "--clients",
            "6",
            "--clients-per-round",
            "3",
            "--local-epochs",
            "1",
            "--per-class",
            "8",
            "--pretrain-epochs",
            "2",
            "--alpha",
            "0.5",
            "--model",
            "mlp",
            "--backend",
            "local",
            "--train-workers",
            "0",
            "--config",
            str(preset),
            "--output-dir",
            str(run),
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["variants"]) == {"fgl", "fgl_rounds"}
    one, more = summary["variants"]["fgl"], summary["variants"]["fgl_rounds"]

    lines = [json.loads(line) for line in (run / "fgl" / "prompts" / "uploads.jsonl").read_text("utf-8").splitlines()]
    assert len(lines) == 6
    sizes = [len(json.dumps(r["body"], ensure_ascii=False, separators=(",", ":")).encode("utf-8")) for r in lines]
    assert [r["bytes"] for r in lines] == sizes
    P = one["num_params"]
    assert one["prompt_upload_bytes"] == sum(sizes) == more["prompt_upload_bytes"]
    assert one["final_round"] == 1 and one["cum_bytes"] == sum(sizes) + 6 * P * 4
    # fgl_rounds: round 1 is the one-shot model, then two FedAvg rounds of 3 clients down and up.
    assert [r for r, _ in more["accuracy_per_round"]] == [0, 1, 2, 3]
    assert more["accuracy_per_round"][1][1] == pytest.approx(one["final_accuracy"])
    assert more["cum_bytes"] == sum(sizes) + 2 * (3 + 3) * P * 4
    assert more["server_finetune_epochs"] == 1 and len(more["gradient_diversity_per_round"]) == 2

    # The server's rows follow the clients' class counts at --per-class 8 per class held.
    rows = [json.loads(line) for line in (run / "fgl" / "prompts" / "prompts.jsonl").read_text("utf-8").splitlines()]
    assert len(rows) == one["synthetic_samples"] == 8 * len({p["label"] for r in lines for p in r["body"]["prompts"]})
    manifest = json.loads((run / "fgl" / "synthetic" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["total_rows"] == len(rows)
    assert (run / "fgl" / "model" / "model.safetensors").exists()
    assert "[fgl]" in (run / "config.toml").read_text()


def test_method_fgl_is_fedavg_beside_fgl():
    from gptfl_ray.cli.simulate import method_variants
    from gptfl_ray.methods.simulate import simulate_config

    cfg = simulate_config(
        {}, {"simulate": {"variants": method_variants("fgl", None)}, "fgl": {"rounds": 3, "server_finetune_epochs": 1}}
    )
    assert cfg.variants == ("fedavg", "fgl") and cfg.fgl.rounds == 3 and cfg.fgl.server_finetune_epochs == 1
    assert method_variants(None, "gptfl") == "gptfl"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--fgl-prompts", "embedding"], "--fgl-prompts"),
        (["--fgl-prompts", "instance", "--captioner", "/no/such/captioner"], "--captioner"),
        (["--server-finetune-epochs", "2"], "--server-finetune-epochs"),
        (["--fgl-rounds", "-1"], "--fgl-rounds"),
        (["--method", "fgl", "--variants", "fedavg"], "--method"),
        (["--method", "magic"], "--method"),
    ],
)
def test_bad_fgl_input_fails_in_one_line(tmp_path, args, needle):
    base = ["simulate", "--backend", "local", "--train-workers", "0", "--output-dir", str(tmp_path / "run")]
    res = runner.invoke(app, [*base, *(args if "--method" in args else ["--variants", "fgl", *args])])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert not (tmp_path / "run" / "fgl").exists()
