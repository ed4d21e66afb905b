"""`gptfl-ray prompts` and `gptfl-ray generate`: GPT-FL's synthetic data (sections 3.1-3.2).

Parsing and printing only; the work lives in gptfl_ray.synth. Both resolve their settings as
`simulate` does (defaults < --config < --set < options), so a preset or a run's config.toml
drives a single stage exactly as it drives the whole method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gptfl_ray.cli.common import DEFAULT_RUN, console, guarded, load_config
from gptfl_ray.cli.options import CONFIG_OPTIONS, GENERATE_FIELDS, OUTPUT_OPTIONS, choice, opt, with_options

STAGE_DATA = [
    opt(
        "dataset",
        choice("dataset"),
        None,
        "Data set whose label names, sizes and sample shape are used.",
        "--dataset",
        "-d",
    ),
    opt("data_dir", Optional[str], None, "Where torchvision/torchaudio data sets live."),
    opt("download", Optional[bool], None, "Fetch a missing data set (needs network).", "--download/--no-download"),
    opt("seed", Optional[int], None, "Seed."),
    opt(
        "output_dir",
        Path,
        Path(DEFAULT_RUN),
        "Run directory (shared by every stage and simulate).",
        "--output-dir",
        "-o",
    ),
]
COUNT_OPTIONS = [
    opt("per_class", Optional[int], None, "Samples (prompts) per class."),
    opt("scale", Optional[float], None, "k x the real train size (paper's 1x/2x/3x)."),
]
PROMPTS_OPTIONS = [
    opt("style", choice("style"), None, "Prompt style."),
    opt("labels", Optional[str], None, "Received label set: a,b,c or @file (JSON list / lines)."),
    opt("llm_model", Optional[str], None, "Causal LM (hub id or local path) for --style llm."),
    opt("llm_max_tries", Optional[int], None, "LLM rounds per class before the template fallback."),
    opt("guidance_min", Optional[float], None, "Smallest guidance scale."),
    opt("guidance_max", Optional[float], None, "Largest guidance scale."),
    opt("guidance_draw", choice("guidance_draw"), None, "integer (1..5, the original code) or uniform (bucketed)."),
    opt("guidance_grid", Optional[float], None, "Grid step for --guidance-draw uniform."),
    opt(
        "style_words",
        Optional[bool],
        None,
        "Mix glyph style words into image prompts.",
        "--style-words/--no-style-words",
    ),
    opt("overwrite", bool, False, "Replace prompts made with other settings."),
]
GENERATE_OPTIONS = [
    opt(
        "generator",
        choice("generator"),
        None,
        "Generative model family (glyph: offline, no download).",
        "--generator",
        "-g",
    ),
    opt("gen_model", Optional[str], None, "Generator model: hub id or local path (the generator's own if unset)."),
    opt("model_revision", Optional[str], None, "Hub branch, tag or commit of --gen-model."),
    opt("gen_actors", Optional[int], None, "Generator actors in the Ray Data pool."),
    opt("gen_gpus", Optional[float], None, "GPUs per generator actor (fractions share a GPU)."),
    opt("gen_batch_size", Optional[int], None, "Prompts per generator call."),
    opt("shard_size", Optional[int], None, "Rows per Parquet shard."),
    opt("engine", choice("engine"), None, "ray (a Ray Data actor pool) or local (a plain loop, same bytes)."),
    opt("steps", Optional[int], None, "Diffusion steps (diffusers, audioldm)."),
    opt("scheduler", choice("scheduler"), None, "dpm (DPM-Solver multistep) or default (the model's own)."),
    opt("compile_unet", Optional[bool], None, "torch.compile the UNet (GPU).", "--compile/--no-compile"),
    opt("height", Optional[int], None, "Generation height in pixels before resizing to the data set's size."),
    opt("width", Optional[int], None, "Generation width in pixels before resizing to the data set's size."),
    opt("negative_prompt", Optional[str], None, "Negative prompt (diffusers)."),
    opt("clip_seconds", Optional[float], None, "Audio length when the data set has none."),
    opt(
        "speaker_embeddings",
        Optional[str],
        None,
        "SpeechT5 x-vectors: .npy/.pt (K, 512), hf:<data set id>, or random (offline fallback).",
    ),
    opt("vocoder", Optional[str], None, "SpeechT5 HiFi-GAN hub id or path."),
    opt(
        "device", Optional[str], None, "Generator device: auto (cuda with fp16 when a GPU is visible), cpu or cuda[:N]."
    ),
    opt("overwrite", bool, False, "Discard synthetic data made with another config."),
]


def stage_config(kw: dict, prompts: dict | None = None, generate: dict | None = None):
    """Resolve a stage's settings like `simulate`: defaults < --config file < --set < options."""
    from gptfl_ray.methods.simulate import simulate_config

    file_cfg = load_config(kw.get("config"), kw.get("set"))
    fed = {k: kw.get(k) for k in ("dataset", "data_dir", "download", "seed")}
    counts = {k: kw.get(k) for k in ("per_class", "scale")}
    return simulate_config(
        file_cfg,
        {"federate": fed, "prompts": {**counts, **(prompts or {})}, "generate": {**counts, **(generate or {})}},
    )


def _dataset(name: str, data_dir: Optional[str], download: bool):
    """Only class names, train size and sample shape matter here: none depends on the split seed."""
    from gptfl_ray.data.registry import load_dataset

    return load_dataset(name, data_dir=data_dir, download=download, seed=0)


def _make_prompts(dataset, cfg, run_dir: Path) -> list[dict]:
    from gptfl_ray.runio import write_config_section
    from gptfl_ray.synth.prompts import LLMPromptFiller, build_prompts, prompt_kind, write_prompts

    llm = None
    if cfg.style == "llm" and prompt_kind(dataset) != "speech":
        with console.status(f"loading {cfg.llm_model}"):
            llm = LLMPromptFiller(cfg, prompt_kind(dataset))
    rows = build_prompts(dataset, cfg, llm=llm)
    path = write_prompts(run_dir, rows, cfg)
    write_config_section(run_dir, "prompts", cfg)
    console.print(
        f"wrote {len(rows)} prompts ({len(rows) // max(1, len({r['label'] for r in rows}))} per class, "
        f"style {cfg.style}) to {path}",
        highlight=False,
    )
    if llm is not None and llm.stats["fallback"]:
        console.print(
            f"[yellow]warning:[/] the LLM named the label too rarely; {llm.stats['fallback']} prompts "
            f"fell back to class templates (dropped {llm.stats['dropped_no_label']} without the label, "
            f"{llm.stats['dropped_duplicate']} duplicates)",
            highlight=False,
        )
    return rows


@with_options(STAGE_DATA, COUNT_OPTIONS, PROMPTS_OPTIONS, CONFIG_OPTIONS, OUTPUT_OPTIONS)
def prompts_cmd(**kw):
    """Write <run>/prompts/prompts.jsonl: one seeded prompt and guidance scale per sample."""
    from gptfl_ray.runio import RunLock, check_output_dir
    from gptfl_ray.synth.labels import parse_label_option

    keys = ("style", "llm_model", "llm_max_tries", "guidance_min", "guidance_max", "guidance_draw", "guidance_grid")
    given = {k: kw[k] for k in keys} | {"style_words": kw["style_words"]}
    labels = parse_label_option(kw["labels"])
    given["labels"] = tuple(labels) if labels is not None else None
    sim = stage_config(kw, prompts=given)
    cfg, data = sim.prompts, sim.federate.data
    ds = _dataset(data.dataset, data.data_dir, data.download)
    output_dir = check_output_dir(kw["output_dir"])
    with RunLock(output_dir):
        if not kw["overwrite"]:
            _check_prompts(output_dir, cfg)
        rows = _make_prompts(ds, cfg, output_dir)
    from gptfl_ray.synth.prompts import prompts_path

    return {
        "run_dir": str(output_dir),
        "prompts": str(prompts_path(output_dir)),
        "dataset": ds.name,
        "style": cfg.style,
        "total": len(rows),
        "per_class": len(rows) // max(1, len({r["label"] for r in rows})),
    }


def _check_prompts(run_dir: Path, cfg) -> None:
    """Prompts of other settings are not replaced without --overwrite (generation keys on them)."""
    import json

    from gptfl_ray.config import check_resumable
    from gptfl_ray.synth.prompts import META_FILE, _config_json, prompts_path

    meta = prompts_path(run_dir).with_name(META_FILE)
    if meta.is_file():
        try:
            saved = json.loads(meta.read_text("utf-8")).get("config")
        except ValueError:
            return  # unreadable: vouches for nothing
        if saved is not None:
            check_resumable("prompts", run_dir, saved, _config_json(cfg))


@with_options(STAGE_DATA, COUNT_OPTIONS, GENERATE_OPTIONS, CONFIG_OPTIONS, OUTPUT_OPTIONS)
def generate_cmd(**kw):
    """Run a generator over the prompts with a Ray Data actor pool; write <run>/synthetic/ shards
    (made first from the same settings when <run>/prompts/ is missing)."""
    from gptfl_ray.synth.format import TargetFormat
    from gptfl_ray.synth.generators import generator_class

    keys = [p.name for p in GENERATE_OPTIONS if p.name != "overwrite"]
    given = {GENERATE_FIELDS.get(k, k): kw[k] for k in keys} | {"overwrite": kw["overwrite"] or None}
    sim = stage_config(kw, generate=given)
    cfg, data = sim.generate, sim.federate.data
    from gptfl_ray.runio import RunLock, check_output_dir

    ds = _dataset(data.dataset, data.data_dir, data.download)
    target = TargetFormat.from_dataset(ds)
    generator_class(cfg.generator).preflight(target, cfg.model, cfg.generator_options())  # before any work
    output_dir = check_output_dir(kw["output_dir"])
    with RunLock(output_dir):
        manifest = _generate(cfg, sim.prompts, ds, target, output_dir, kw["per_class"], kw["scale"])
    return {
        "run_dir": str(output_dir),
        "synthetic": str(output_dir / "synthetic"),
        "generator": cfg.generator,
        **{k: manifest.get(k) for k in ("total_rows", "num_shards", "model_revision", "seconds", "sha256")},
        "written_shards": len(manifest["written_shards"]),
    }


def _generate(cfg, prompts_cfg, ds, target, output_dir: Path, per_class, scale) -> dict:
    from gptfl_ray.runio import write_config_section
    from gptfl_ray.synth.config import per_class_count
    from gptfl_ray.synth.pipeline import generate
    from gptfl_ray.synth.prompts import prompts_path, read_prompts, take_per_class

    if prompts_path(output_dir).is_file():
        rows = read_prompts(output_dir, ds)
        if per_class is not None or scale is not None:
            rows = take_per_class(rows, per_class_count(per_class, scale, len(ds.x_train), ds.num_classes))
    else:
        rows = _make_prompts(ds, prompts_cfg, output_dir)
    if cfg.engine == "ray":
        from gptfl_ray.ray_runtime import check_resources, ensure_ray, generate_request

        ensure_ray()
        check_resources([generate_request(cfg)])
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]shards"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("shards", total=None)
        manifest = generate(
            rows,
            target,
            ds.class_names,
            cfg,
            output_dir,
            on_start=lambda total, done: bar.update(task, total=total, completed=done),
            on_shard=lambda k, n: bar.advance(task),
        )
    write_config_section(output_dir, "generate", cfg)
    from gptfl_ray.plots import plot_inputs

    plot_inputs(output_dir, ds)  # the sample grid: what the generator made, at a glance
    console.print(
        f"{manifest['total_rows']} samples in {manifest['num_shards']} shards "
        f"({len(manifest['written_shards'])} written, {manifest['num_shards'] - len(manifest['written_shards'])} kept) "
        f"by {cfg.generator} (model revision {manifest.get('model_revision')}) in {manifest['seconds']:.1f}s "
        f"-> {output_dir / 'synthetic'}",
        highlight=False,
    )
    return manifest


def register(app: typer.Typer) -> None:
    app.command("prompts")(guarded(prompts_cmd))
    app.command("generate")(guarded(generate_cmd))


def _present() -> None:
    from gptfl_ray.cli.presentation import field_defaults, present
    from gptfl_ray.config import DataConfig
    from gptfl_ray.synth.config import GenerateConfig, PromptsConfig

    data = {**field_defaults(DataConfig), "seed": 0}
    gen = field_defaults(
        GenerateConfig,
        rename={f: o for o, f in GENERATE_FIELDS.items()},
    )
    gen.update(
        gen_model="the generator's own", model_revision="main", speaker_embeddings="hf:regisss/cmu-arctic-xvectors"
    )
    gen["vocoder"] = "microsoft/speecht5_hifigan"
    present("Data", STAGE_DATA, data)
    present("Synthesis", COUNT_OPTIONS, {"per_class": "1x the real train size"})
    present(
        "Prompts",
        PROMPTS_OPTIONS,
        {**field_defaults(PromptsConfig), "labels": "every class", "llm_model": "openai-community/gpt2"},
    )
    present("Generation", GENERATE_OPTIONS, gen, {"device": lambda: ("auto", "cpu", "cuda")})


_present()
