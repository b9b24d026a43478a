"""The ``anchorudf`` command line (Typer).

Every command takes ``--params FILE`` and DVC-style overrides ``-S section.key=value``;
``anchorudf train -S train.lambda_gda=0.02`` means what ``dvc exp run -S
train.lambda_gda=0.02`` means. Heavy libraries are imported inside the commands so that
``anchorudf --help`` starts fast.

Errors are handled once, for every command (also ``python -m anchorudf`` and torchrun):
:class:`OneLineErrors` prints ``error: <file>: <problem>`` on stderr and exits 1 (2 for
params errors, 130 when interrupted); ``--debug`` or ``ANCHORUDF_DEBUG=1`` shows the
traceback instead. Commands therefore just call the stages, without try/except.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path, PurePath
from typing import Any, Optional

import typer
from typer.core import TyperGroup
from typer.exceptions import Abort, Exit, TyperException

DEBUG_ENV = "ANCHORUDF_DEBUG"
# Names under which a function usually holds the file it is reading or writing.
_PATH_NAMES = ("path", "file", "filename", "fname", "pointer", "image_path", "mask_path")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _flat(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _file_of(exc: BaseException) -> str | None:
    """The file a library error is about, for errors that do not say (JSON, safetensors,
    PIL, YAML): ``exc.filename`` if set, else the path held by the innermost anchorudf
    function on the traceback (a local named ``path``/``file``/..., or its only path-like
    local)."""
    name = getattr(exc, "filename", None)
    if name:
        return str(name)
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        local = frame.f_locals
        for key in _PATH_NAMES:
            if isinstance(local.get(key), (str, PurePath)) and str(local[key]):
                return str(local[key])
        paths = {str(v) for v in local.values() if isinstance(v, PurePath)}
        if len(paths) == 1:
            return paths.pop()
    return None


def _library_kind(exc: BaseException) -> str | None:
    """What an expected library error means, in words (None: not one we know)."""
    import json

    known = [("json", json.JSONDecodeError, "invalid JSON")]
    for module, attr, words in (("safetensors", "SafetensorError", "damaged safetensors file"),
                                ("PIL.Image", "DecompressionBombError", "image too large"),
                                ("PIL", "UnidentifiedImageError", "not a readable image"),
                                ("yaml", "YAMLError", "invalid YAML")):
        cls = getattr(sys.modules.get(module), attr, None)  # not imported: cannot be raised
        if isinstance(cls, type):
            known.append((module, cls, words))
    for _, cls, words in known:
        if isinstance(exc, cls):
            return words
    return None


def error_line(exc: BaseException) -> str:
    """``<file>: <problem>`` on one line, for any exception (the CLI prefixes ``error: ``)."""
    from anchorudf.errors import AnchorUDFError

    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
        return f"{where}: {exc.strerror}"
    text = _flat(str(exc))
    if isinstance(exc, AnchorUDFError):  # our messages name their file already
        return text or type(exc).__name__
    kind = _library_kind(exc)
    if kind is None and not isinstance(exc, (OSError, ValueError)):
        kind = f"{type(exc).__name__} (unexpected; --debug or {DEBUG_ENV}=1 shows the traceback)"
    problem = f"{kind}: {text}" if kind and text else (kind or text or type(exc).__name__)
    where = _file_of(exc)
    return problem if where is None or where in text else f"{where}: {problem}"


def exit_code(exc: BaseException) -> int:
    """2 for configuration (params/override) errors, as for usage errors; 1 otherwise."""
    from anchorudf.config import ConfigError

    return 2 if isinstance(exc, ConfigError) else 1


class OneLineErrors(TyperGroup):
    """Runs every command; turns any error into one line ``error: <file>: <problem>`` on
    stderr and exit status 1 (2: params/usage, 130: interrupted). ``--debug`` or
    ``ANCHORUDF_DEBUG=1`` lets the error through with its traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (Exit, Abort, TyperException):  # typer's own exits and usage errors
            raise
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            typer.secho("error: interrupted", fg="red", err=True)
            raise Exit(130) from None
        except Exception as exc:
            if _debug(ctx):
                raise
            typer.secho(f"error: {error_line(exc)}", fg="red", err=True)
            raise Exit(exit_code(exc)) from None


def _debug(ctx: Any) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get(DEBUG_ENV, "").strip().lower() in (
        "1", "true", "yes", "on")


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=OneLineErrors,
                  pretty_exceptions_show_locals=False,
                  help="Single-view 3D garment reconstruction with anchored UDFs (AnchorUDF).")


@app.callback()
def _global_options(debug: bool = typer.Option(False, "--debug",
                                                help=f"show tracebacks instead of one-line errors "
                                                     f"(also: {DEBUG_ENV}=1)")):
    """Single-view 3D garment reconstruction with anchored UDFs (AnchorUDF)."""

ParamsOpt = typer.Option(Path("params.yaml"), "--params", "-p", help="params file (params.yaml)")
SetOpt = typer.Option(None, "--set", "-S", help="override, section.key=value (repeatable)")


def _load(params: Path, overrides: Optional[list[str]]):
    from anchorudf.config import load_params

    # a ConfigError becomes one line and exit status 2 in OneLineErrors
    if not params.exists() and str(params) == "params.yaml":
        typer.echo(f"note: no params.yaml in {Path.cwd()}: using the built-in defaults", err=True)
        return load_params(None, overrides or [])
    return load_params(params, overrides or [])


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

    stages.garments(_load(params, overrides), out, report=report)


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
    stages.preprocess(_load(params, extra), out)


@app.command("render")
def render_cmd(shard: int = typer.Option(0, help="shard id (one of render.shards)"),
               garments: Path = typer.Option(Path("data/garments"), help="garments folder"),
               out: Path = typer.Option(Path("data/render"), help="render root (shard-<k> inside)"),
               params: Path = ParamsOpt, overrides: Optional[list[str]] = SetOpt):
    """Stage 2: render the views of one shard of garments (image, mask, calib)."""
    from anchorudf import stages

    summary = stages.render(_load(params, overrides), garments, out, shard)
    typer.echo(f"render shard {shard}: {summary.get('rendered', 0)} rendered, "
               f"{summary.get('skipped_existing', 0)} already done, {len(summary.get('failed', []))} failed")


@app.command("sample")
def sample_cmd(shard: int = typer.Option(0, help="shard id (one of sample.shards)"),
               garments: Path = typer.Option(Path("data/garments"), help="garments folder"),
               out: Path = typer.Option(Path("data/cache"), help="cache root (samples/shard-<k> inside)"),
               params: Path = ParamsOpt, overrides: Optional[list[str]] = SetOpt):
    """Stage 3a: query points with exact distance targets for one shard."""
    from anchorudf import stages

    summary = stages.sample(_load(params, overrides), garments, out, shard)
    typer.echo(f"sample shard {shard}: {summary}")


@app.command("anchors")
def anchors_cmd(garments: Path = typer.Option(Path("data/garments"), help="garments folder"),
                out: Path = typer.Option(Path("data/cache"), help="cache root (anchors inside)"),
                params: Path = ParamsOpt, overrides: Optional[list[str]] = SetOpt):
    """Stage 3b: k-means anchor targets and evaluation surface samples."""
    from anchorudf import stages

    summary = stages.anchors(_load(params, overrides), garments, out)
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

    from anchorudf import stages

    metrics = stages.train(_load(params, overrides), data, run_dir, live_dir=live_dir, max_steps=max_steps,
                           synthetic_items=synthetic_items if synthetic else None)
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

    stages.evaluate(_load(params, overrides), data, model, out, recon, metrics)


@app.command("teaser")
def teaser_cmd(eval_dir: Path = typer.Option(Path("reports/eval"), "--eval", help="evaluate output folder"),
               out: Path = typer.Option(Path("docs/teaser.png"), "--out", "-o", help="picture to write"),
               ids: Optional[list[str]] = typer.Option(None, "--id", help="garment id (repeatable); default: "
                                                       "the median garment of 3 categories"),
               count: int = typer.Option(3, help="categories (rows) when no --id is given")):
    """The README teaser from an evaluation's pictures/ and views.csv (no model or data)."""
    from anchorudf.evaluate.report import make_teaser

    typer.echo(str(make_teaser(eval_dir, out, ids or None, count)))


@app.command("reconstruct")
def reconstruct_cmd(image: Path = typer.Argument(..., help="RGB(A) image of a garment"),
                    mask: Optional[Path] = typer.Option(None, "--mask", "-m", help="mask image (white = garment)"),
                    checkpoint: Optional[Path] = typer.Option(
                        None, "--checkpoint", "-c",
                        help="model folder (or checkpoint folder), e.g. data/train/model; "
                             "default: the shipped weights (anchorudf weights)"),
                    out: Path = typer.Option(Path("reconstruction"), "--out", "-o", help="output folder"),
                    no_mesh: bool = typer.Option(False, "--no-mesh", help="points only"),
                    params: Path = ParamsOpt, overrides: Optional[list[str]] = SetOpt):
    """Reconstruct one garment image: points.ply, coloured mesh.ply/.glb, mesh.obj, anchors.ply, preview.png."""
    from anchorudf.reconstruct.run import run_reconstruct

    if checkpoint is None:
        from anchorudf import weights

        checkpoint = weights.model_dir()  # verified against the card's sha256 here
        typer.echo(f"using the shipped weights {checkpoint} (see `anchorudf weights`; "
                   "--checkpoint DIR for a model of your own)", err=True)
    files = run_reconstruct(image, mask, checkpoint, out, _load(params, overrides), mesh=not no_mesh)
    for f in files:
        typer.echo(str(f))


@app.command("weights")
def weights_cmd(as_json: bool = typer.Option(False, "--json", help="print the whole card (JSON)")):
    """What is shipped: the weights' sha256 (verified), recipe, data and scores, and the example images."""
    import json

    from anchorudf import weights

    card = weights.verify()
    typer.echo(json.dumps(card, indent=2, sort_keys=True) if as_json else weights.describe(card))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
