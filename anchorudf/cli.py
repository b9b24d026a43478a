"""The ``anchorudf`` command line (Typer).

Every command takes ``--params FILE`` and DVC-style overrides ``-S section.key=value``;
``anchorudf train -S train.lambda_gda=0.02`` means what ``dvc exp run -S
train.lambda_gda=0.02`` means. Heavy libraries are imported inside the commands so that
``anchorudf --help`` starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Single-view 3D garment reconstruction with anchored UDFs (AnchorUDF).")

ParamsOpt = typer.Option(Path("params.yaml"), "--params", "-p", help="params file (params.yaml)")
SetOpt = typer.Option(None, "--set", "-S", help="override, section.key=value (repeatable)")


def _load(params: Path, overrides: Optional[list[str]]):
    from anchorudf.config import ConfigError, load_params

    try:
        return load_params(params if params.exists() or str(params) != "params.yaml" else None,
                           overrides or [])
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 1):
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


@app.command("params")
def params_cmd(params: Path = ParamsOpt, overrides: Optional[list[str]] = SetOpt,
               reference: bool = typer.Option(False, "--reference", help="print the params reference (Markdown)")):
    """Print the resolved parameters (file + overrides + defaults) as YAML."""
    from anchorudf.config import dump_params, params_reference

    if reference:
        typer.echo(params_reference())
        return
    typer.echo(dump_params(_load(params, overrides)), nl=False)


@app.command("garments")
def garments_cmd(out: Path = typer.Option(Path("data/garments"), help="garments folder"),
                 report: Optional[Path] = typer.Option(None, help="write a JSON summary here"),
                 params: Path = ParamsOpt, overrides: Optional[list[str]] = SetOpt):
    """Stage 1: build the garment set (default anny set, or garments.source/input)."""
    from anchorudf import stages

    p = _load(params, overrides)
    try:
        stages.garments(p, out, report=report)
    except stages.StageError as exc:
        _fail(str(exc))


@app.command("preprocess")
def preprocess_cmd(input: Optional[Path] = typer.Option(None, "--input", "-i", help="dataset folder"),
                   format: str = typer.Option("generic", "--format", "-f", help="generic | mgn | df3d"),
                   out: Path = typer.Option(Path("data"), "--out", "-o", help="output root"),
                   strict: bool = typer.Option(False, "--strict", help="fail if any file is rejected"),
                   up_axis: Optional[str] = typer.Option(None, "--up-axis",
                                                         help="up axis of the input meshes (sets garments.up_axis)"),
                   params: Path = ParamsOpt, overrides: Optional[list[str]] = SetOpt):
    """Run all preprocessing (garments, render, sample, anchors) outside DVC into OUT."""
    from anchorudf import stages

    extra = list(overrides or [])
    if input is not None:
        extra += [f"garments.source={format}", f"garments.input={input}"]
    if strict:
        extra.append("garments.strict=true")
    if up_axis is not None:
        import json

        extra.append(f"garments.up_axis={json.dumps(up_axis)}")  # a YAML string, whatever it holds
    p = _load(params, extra)
    try:
        stages.preprocess(p, out)
    except stages.StageError as exc:
        _fail(str(exc))


@app.command("render")
def render_cmd(shard: int = typer.Option(0, help="shard id (one of render.shards)"),
               garments: Path = typer.Option(Path("data/garments"), help="garments folder"),
               out: Path = typer.Option(Path("data/render"), help="render root (shard-<k> inside)"),
               params: Path = ParamsOpt, overrides: Optional[list[str]] = SetOpt):
    """Stage 2: render the views of one shard of garments (image, mask, calib)."""
    from anchorudf import stages

    p = _load(params, overrides)
    try:
        summary = stages.render(p, garments, out, shard)
    except stages.StageError as exc:
        _fail(str(exc))
    typer.echo(f"render shard {shard}: {summary.get('rendered', 0)} rendered, "
               f"{summary.get('skipped_existing', 0)} already done, {len(summary.get('failed', []))} failed")


@app.command("sample")
def sample_cmd(shard: int = typer.Option(0, help="shard id (one of sample.shards)"),
               garments: Path = typer.Option(Path("data/garments"), help="garments folder"),
               out: Path = typer.Option(Path("data/cache"), help="cache root (samples/shard-<k> inside)"),
               params: Path = ParamsOpt, overrides: Optional[list[str]] = SetOpt):
    """Stage 3a: query points with exact distance targets for one shard."""
    from anchorudf import stages

    p = _load(params, overrides)
    try:
        summary = stages.sample(p, garments, out, shard)
    except stages.StageError as exc:
        _fail(str(exc))
    typer.echo(f"sample shard {shard}: {summary}")


@app.command("anchors")
def anchors_cmd(garments: Path = typer.Option(Path("data/garments"), help="garments folder"),
                out: Path = typer.Option(Path("data/cache"), help="cache root (anchors inside)"),
                params: Path = ParamsOpt, overrides: Optional[list[str]] = SetOpt):
    """Stage 3b: k-means anchor targets and evaluation surface samples."""
    from anchorudf import stages

    p = _load(params, overrides)
    try:
        summary = stages.anchors(p, garments, out)
    except stages.StageError as exc:
        _fail(str(exc))
    typer.echo(f"anchors: {summary}")


@app.command("train")
def train_cmd(data: Path = typer.Option(Path("data"), help="preprocessed data root (garments, render, cache)"),
              run_dir: Path = typer.Option(Path("data/train"), "--run-dir", help="checkpoints and final model"),
              live_dir: Optional[Path] = typer.Option(None, "--live-dir", help="dvclive folder (metrics, plots)"),
              max_steps: Optional[int] = typer.Option(None, "--max-steps",
                                                      help="stop at this absolute step (resumable)"),
              synthetic: bool = typer.Option(False, "--synthetic",
                                             help="train on a tiny synthetic dataset (smoke tests), not DATA"),
              synthetic_items: int = typer.Option(16, "--synthetic-items", help="items of the synthetic dataset"),
              params: Path = ParamsOpt, overrides: Optional[list[str]] = SetOpt):
    """Stage 4: train AnchorUDF (CUDA when present, else CPU); prints the final metrics (JSON).

    Several GPUs or nodes: torchrun --nproc_per_node=N -m anchorudf train [OPTIONS]
    """
    import json
    import os

    from anchorudf import stages

    p = _load(params, overrides)
    try:
        metrics = stages.train(p, data, run_dir, live_dir=live_dir, max_steps=max_steps,
                               synthetic_items=synthetic_items if synthetic else None)
    except stages.StageError as exc:
        _fail(str(exc))
    if int(os.environ.get("RANK", "0")) == 0:  # one copy under torchrun
        typer.echo(json.dumps(metrics, indent=2, sort_keys=True))


@app.command("evaluate")
def evaluate_cmd(data: Path = typer.Option(Path("data"), help="preprocessed data root"),
                 model: Path = typer.Option(Path("data/train/model"), help="trained model folder"),
                 out: Path = typer.Option(Path("reports/eval"), help="table, pictures, index.html"),
                 recon: Path = typer.Option(Path("data/eval"), help="reconstructed clouds and meshes"),
                 metrics: Optional[Path] = typer.Option(Path("reports/metrics.json"), help="metrics JSON"),
                 params: Path = ParamsOpt, overrides: Optional[list[str]] = SetOpt):
    """Stage 5: reconstruct the test views, compute metrics and baselines, draw pictures."""
    from anchorudf import stages

    p = _load(params, overrides)
    try:
        stages.evaluate(p, data, model, out, recon, metrics)
    except (stages.StageError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))


@app.command("reconstruct")
def reconstruct_cmd(image: Path = typer.Argument(..., help="RGB(A) image of a garment"),
                    mask: Optional[Path] = typer.Option(None, "--mask", "-m", help="mask image (white = garment)"),
                    checkpoint: Path = typer.Option(Path("data/train/model"), "--checkpoint", "-c",
                                                    help="model folder (or checkpoint folder)"),
                    out: Path = typer.Option(Path("reconstruction"), "--out", "-o", help="output folder"),
                    no_mesh: bool = typer.Option(False, "--no-mesh", help="points only"),
                    params: Path = ParamsOpt, overrides: Optional[list[str]] = SetOpt):
    """Reconstruct one garment image: points.ply, mesh.ply/.obj, anchors.ply, preview.png."""
    from anchorudf.reconstruct.run import InputImageError, run_reconstruct

    p = _load(params, overrides)
    try:
        files = run_reconstruct(image, mask, checkpoint, out, p, mesh=not no_mesh)
    except (InputImageError, FileNotFoundError) as exc:
        _fail(str(exc))
    for f in files:
        typer.echo(str(f))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
