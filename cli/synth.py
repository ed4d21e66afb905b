"""`gptfl-ray prompts` and `gptfl-ray generate`: GPT-FL's synthetic data (sections 3.1-3.2).

Parsing and printing only; the work lives in gptfl_ray.synth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gptfl_ray.cli.common import console, guarded

DEFAULT_RUN = "runs/simulate"  # the run directory every stage and `simulate` share


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


def prompts_cmd(
    dataset: str = typer.Option("digits", "--dataset", "-d", help="data set whose label names are prompted"),
    output_dir: Path = typer.Option(DEFAULT_RUN, "--output-dir", "-o", help="run directory"),
    style: str = typer.Option("class", "--style", help="class | multi-domain | llm"),
    per_class: Optional[int] = typer.Option(None, "--per-class", help="prompts per class"),
    scale: Optional[float] = typer.Option(None, "--scale", help="k x real train size / classes (paper's 1x/2x/3x)"),
    seed: int = typer.Option(0, "--seed"),
    labels: Optional[str] = typer.Option(
        None, "--labels", help="received label set: a,b,c or @file (JSON list / lines)"
    ),
    llm_model: Optional[str] = typer.Option(None, "--llm-model", help="causal LM hub id or local path (style llm)"),
    llm_max_tries: int = typer.Option(8, "--llm-max-tries", help="LLM rounds per class before template fallback"),
    guidance_min: float = typer.Option(1.0, "--guidance-min"),
    guidance_max: float = typer.Option(5.0, "--guidance-max"),
    guidance_draw: str = typer.Option(
        "integer", "--guidance-draw", help="integer (1..5, the original code) | uniform (bucketed)"
    ),
    guidance_grid: float = typer.Option(0.5, "--guidance-grid", help="grid step for --guidance-draw uniform"),
    style_words: bool = typer.Option(
        True, "--style-words/--no-style-words", help="mix glyph style words into image prompts"
    ),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    download: bool = typer.Option(False, "--download/--no-download"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace prompts made with other settings"),
):
    """Write <run>/prompts/prompts.jsonl: one seeded prompt and guidance scale per sample."""
    from gptfl_ray.synth.config import PromptsConfig
    from gptfl_ray.synth.labels import parse_label_option

    cfg = PromptsConfig(
        dataset=dataset,
        style=style,
        per_class=per_class,
        scale=scale,
        seed=seed,
        guidance_min=guidance_min,
        guidance_max=guidance_max,
        guidance_draw=guidance_draw,
        guidance_grid=guidance_grid,
        style_words=style_words,
        llm_model=llm_model,
        llm_max_tries=llm_max_tries,
        labels=parse_label_option(labels),
    )
    from gptfl_ray.runio import RunLock, check_output_dir

    ds = _dataset(dataset, data_dir, download)
    check_output_dir(output_dir)
    with RunLock(output_dir):
        if not overwrite:
            _check_prompts(output_dir, cfg)
        _make_prompts(ds, cfg, output_dir)


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


def generate_cmd(
    dataset: str = typer.Option("digits", "--dataset", "-d"),
    output_dir: Path = typer.Option(DEFAULT_RUN, "--output-dir", "-o", help="run directory"),
    generator: str = typer.Option("glyph", "--generator", "-g", help="glyph | diffusers | speecht5 | audioldm"),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="hub id or local path (generator default if unset)"
    ),
    seed: int = typer.Option(0, "--seed"),
    per_class: Optional[int] = typer.Option(None, "--per-class", help="samples per class"),
    scale: Optional[float] = typer.Option(None, "--scale", help="k x real train size / classes"),
    gen_actors: int = typer.Option(1, "--gen-actors", help="generator actors in the Ray Data pool"),
    gen_gpus: float = typer.Option(0.0, "--gen-gpus", help="GPUs per actor (fractions share a GPU)"),
    batch_size: int = typer.Option(16, "--batch-size"),
    shard_size: int = typer.Option(256, "--shard-size", help="rows per Parquet shard"),
    engine: str = typer.Option("ray", "--engine", help="ray | local (plain loop, same bytes)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="discard synthetic data from another config"),
    model_revision: Optional[str] = typer.Option(None, "--model-revision", help="hub branch, tag or commit of --model"),
    steps: int = typer.Option(30, "--steps", help="diffusion steps"),
    scheduler: str = typer.Option("dpm", "--scheduler", help="dpm (DPM-Solver multistep) | default (the model's own)"),
    compile_unet: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the UNet (GPU)"),
    height: Optional[int] = typer.Option(None, "--height"),
    width: Optional[int] = typer.Option(None, "--width"),
    negative_prompt: str = typer.Option("", "--negative-prompt"),
    clip_seconds: float = typer.Option(1.0, "--clip-seconds", help="audio length when the data set has none"),
    speaker_embeddings: Optional[str] = typer.Option(
        None,
        "--speaker-embeddings",
        help="SpeechT5 x-vectors: .npy/.pt (K, 512), hf:<data set id>, or random (offline fallback); "
        "default hf:regisss/cmu-arctic-xvectors",
    ),
    vocoder: Optional[str] = typer.Option(None, "--vocoder", help="SpeechT5 HiFi-GAN hub id or path"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N]"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    download: bool = typer.Option(False, "--download/--no-download"),
):
    """Run a generator over the prompts with a Ray Data actor pool; write <run>/synthetic/ shards."""
    from gptfl_ray.synth.config import GenerateConfig
    from gptfl_ray.synth.generators import generator_class
    from gptfl_ray.synth.generators.base import TargetFormat

    cfg = GenerateConfig(
        dataset=dataset,
        generator=generator,
        model=model,
        seed=seed,
        per_class=per_class,
        scale=scale,
        gen_actors=gen_actors,
        gen_gpus=gen_gpus,
        batch_size=batch_size,
        shard_size=shard_size,
        engine=engine,
        overwrite=overwrite,
        revision=model_revision,
        steps=steps,
        scheduler=scheduler,
        compile=compile_unet,
        height=height,
        width=width,
        negative_prompt=negative_prompt,
        clip_seconds=clip_seconds,
        speaker_embeddings=speaker_embeddings,
        vocoder=vocoder,
        device=device,
    )
    from gptfl_ray.runio import RunLock, check_output_dir

    ds = _dataset(dataset, data_dir, download)
    target = TargetFormat.from_dataset(ds)
    generator_class(cfg.generator).preflight(target, cfg.model, cfg.generator_options())  # before any work
    check_output_dir(output_dir)
    with RunLock(output_dir):
        _generate(cfg, ds, target, output_dir, per_class, scale, seed, dataset)


def _generate(cfg, ds, target, output_dir: Path, per_class, scale, seed, dataset) -> None:
    from gptfl_ray.runio import write_config_section
    from gptfl_ray.synth.config import PromptsConfig, per_class_count
    from gptfl_ray.synth.pipeline import generate
    from gptfl_ray.synth.prompts import prompts_path, read_prompts, take_per_class

    if prompts_path(output_dir).is_file():
        rows = read_prompts(output_dir, ds)
        if per_class is not None or scale is not None:
            rows = take_per_class(rows, per_class_count(per_class, scale, len(ds.x_train), ds.num_classes))
    else:
        rows = _make_prompts(
            ds, PromptsConfig(dataset=dataset, per_class=per_class, scale=scale, seed=seed), output_dir
        )
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


def register(app: typer.Typer) -> None:
    app.command("prompts")(guarded(prompts_cmd))
    app.command("generate")(guarded(generate_cmd))
