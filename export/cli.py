"""``vdeblur-export``: ONNX, TensorRT, Torch-TensorRT and the trtexec command for Jetson.

Errors are raised where the fact is known and printed here as one line (exit code 1); ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from typing import TYPE_CHECKING

import click

from vdeblur import DEFAULT_MODEL
from vdeblur.console import ConsoleGroup, run_console
from vdeblur.launch import SCRIPTS

from .parity_bar import CANDIDATES, THRESHOLD_DB

if TYPE_CHECKING:  # torch and the model code load only when a command runs, not for its help
    from vdeblur.train.archs.base import DeblurModel

_EXPECTED = (ValueError, KeyError, RuntimeError, OSError)


def load_model(spec: str | None) -> DeblurModel:
    """The bundled default (``None``), a registered model name (its bundled weights when there are
    some, as ``vdeblur`` does; random weights with a warning otherwise), a ``.safetensors`` checkpoint
    or another project's checkpoint (``.pth``, ``.h5``; its architecture read from its layout)."""
    from vdeblur.train.checkpoint import load_checkpoint
    from vdeblur.train.registry import build_model, list_models

    spec = _bundled_or(spec or DEFAULT_MODEL)
    if spec.endswith(".safetensors") or Path(spec).is_file():
        model, _ = load_checkpoint(spec)
        return model
    if spec not in list_models():
        raise ValueError(f"--model {spec!r} is neither a checkpoint file nor a registered model "
                         f"({', '.join(list_models())})")
    click.echo(f"warning: {spec} has random weights (no checkpoint given); the export is for testing the "
               "pipeline, not for deblurring", err=True)
    return build_model(spec).eval()


_MODEL_HELP = (f"registered model name (its bundled weights when there are some), .safetensors checkpoint or "
               f"another project's .pth/.h5 "
               f"[default: the bundled {DEFAULT_MODEL}; vdeblur_fast is the real-time one]")


def _profile_options(fn: Callable[..., None]) -> Callable[..., None]:
    """--min/--opt/--max, shared by every TensorRT command."""
    fn = click.option("--max", "max_", help="largest frame, e.g. 1080x1920 (default: --opt)")(fn)
    fn = click.option("--opt", help="most common frame, e.g. 720x1280 (default: --min)")(fn)
    return click.option("--min", "min_", required=True, help="smallest frame: HxW (360x640) or NxCxHxW")(fn)


@click.group(cls=ConsoleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show tracebacks instead of one-line errors")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Export vdeblur models to ONNX and TensorRT."""
    ctx.obj = {"debug": debug}


@cli.command("onnx")
@click.option("--model", "model_spec", default=None, help=_MODEL_HELP)
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--fp16", is_flag=True, help="FP16 graph with FP32 inputs/outputs (cell state and norms stay FP32)")
@click.option("--opset", default=17, show_default=True, type=int)
@click.option("--check-image", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="with --fp16: run FP32 and FP16 graphs on this photo (ONNX Runtime) and report the PSNR between them")
def onnx_cmd(model_spec: str | None, out: Path, fp16: bool, opset: int, check_image: Path | None) -> None:
    """Export one time step of a model to OUT (.onnx)."""
    from .onnx import export_onnx

    model = load_model(model_spec)
    info = export_onnx(model, out, opset=opset, precision="fp16" if fp16 else "fp32")
    state = ", ".join(f"{s.name}: {s.channels}ch at 1/{s.stride}" for s in info.state_slots) or "none"
    click.echo(f"wrote {out} ({info.model}, {info.precision}, pad to {info.pad_multiple}, state {state})")
    if check_image is not None:
        if not fp16:
            raise ValueError("--check-image compares the FP16 graph with the FP32 one; add --fp16")
        _check_fp16(model, out, check_image, opset)


@cli.command("safetensors")
@click.option("--model", "model_spec", required=True,
              help="another project's checkpoint (.pth, .h5: NAFNet, DeblurGAN-v2; docs/published_models.md)")
@click.option("--arch", default=None, help="the architecture to read it into [default: the one its layout names]")
@click.option("--source", required=True, help="where the file was published (its URL), kept in the metadata")
@click.option("--licence", "licence", required=True,
              help="its licence as its authors state it (e.g. MIT), kept in the metadata; you are responsible for it")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def safetensors_cmd(model_spec: str, arch: str | None, source: str, licence: str, out: Path) -> None:
    """Save another project's checkpoint as a vdeblur checkpoint (OUT.safetensors): our architecture
    name and config, the weights, and where they came from, so every vdeblur tool reads it alone."""
    from vdeblur.train.checkpoint import load_checkpoint, save_checkpoint
    from vdeblur.train.foreign import is_foreign

    if out.suffix != ".safetensors":
        raise ValueError(f"output {out} must end in .safetensors")
    if not is_foreign(model_spec):
        raise ValueError(f"--model {model_spec} is not another project's checkpoint (.pth, .pt, .h5, .ckpt)")
    model, info = load_checkpoint(model_spec, arch=arch)
    save_checkpoint(out, model, extra={**info.extra, "source": source, "licence": licence})
    click.echo(f"wrote {out} ({info.model}, from {info.extra['source_file']}, licence {licence})")


def _check_fp16(model: DeblurModel, fp16_path: Path, image: Path, opset: int) -> None:
    import cv2

    from vdeblur.train.padding import pad_to_multiple
    from vdeblur.train.inputs import prepare_input
    from vdeblur.train.frames import from_uint8

    from .fp16 import compare_fp16
    from .onnx import export_onnx

    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{image} is not an image OpenCV can read")
    frame = from_uint8(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))[None]
    # One image, so a model that reads its previous frame sees a first frame (its zero state).
    first = model.initial_state(1, *frame.shape[-2:])
    frame = pad_to_multiple(prepare_input(frame, model.input_kind, first), model.pad_multiple).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        export_onnx(model, fp32_path, opset=opset)
        check = compare_fp16(str(fp32_path), str(fp16_path), [frame] * 3)  # 3 steps: the state is used too
    click.echo(f"fp16 check on {image.name}: finite={check.finite}, PSNR vs fp32 {check.psnr_db:.1f} dB, "
               f"max abs diff {check.max_abs_diff:.2e}")
    if not check.finite:
        raise RuntimeError(f"the FP16 graph produced non-finite values on {image}")


@cli.command("tensorrt")
@click.argument("onnx_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_profile_options
@click.option("--model", "model_spec", default=None,
              help="without ONNX_FILE: " + _MODEL_HELP + ", exported through the cache")
@click.option("--fp32", is_flag=True, help="FP32 engine (default FP16)")
@click.option("--workspace-mib", default=1024, show_default=True, type=int)
@click.option("--opt-level", default=3, show_default=True, type=int, help="builder optimisation level 0..5")
@click.option("--on-stale", type=click.Choice(["rebuild", "refuse"]), default="rebuild", show_default=True)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              help="default: beside ONNX_FILE, or the cache folder's tensorrt/ for --model")
@click.option("--timing-cache", type=click.Path(dir_okay=False, path_type=Path))
def tensorrt_cmd(onnx_file: Path | None, min_: str, opt: str | None, max_: str | None, model_spec: str | None,
                 fp32: bool, workspace_mib: int, opt_level: int, on_stale: str, out_dir: Path | None,
                 timing_cache: Path | None) -> None:
    """Build (or reuse) a TensorRT engine + JSON sidecar from ONNX_FILE, or from --model (default: the
    bundled model) through the export cache."""
    from .artifact_cache import cache_root
    from .onnx import read_graph_info
    from .profiles import parse_profile
    from .tensorrt import BuildConfig, build_engine, import_tensorrt

    if onnx_file is not None and model_spec is not None:
        raise ValueError("give an ONNX_FILE or --model, not both")
    if onnx_file is None:
        from .model_cache import cached_onnx

        import_tensorrt()  # fail before the export if the library is absent
        checkpoint = Path(_bundled_or(model_spec or DEFAULT_MODEL))
        if not checkpoint.is_file():
            raise ValueError(f"--model {model_spec!r} has no trained weights to build an engine from; give a "
                             ".safetensors checkpoint or a model name with bundled weights (vdeblur_deep, vdeblur_fast)")
        onnx_file = cached_onnx(checkpoint, "fp32" if fp32 else "fp16", log=lambda line: click.echo(line, err=True))
        out_dir = out_dir or cache_root() / "tensorrt"
    info = read_graph_info(onnx_file)
    cfg = BuildConfig(parse_profile(min_, opt, max_, info.in_channels), "fp32" if fp32 else "fp16", workspace_mib,
                      opt_level, on_stale, out_dir, timing_cache)
    click.echo(f"engine {build_engine(onnx_file, cfg)}")


@cli.command("torch-trt")
@click.option("--model", "model_spec", default=None, help=_MODEL_HELP)
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@_profile_options
@click.option("--fp32", is_flag=True, help="FP32 (default FP16)")
def torch_trt_cmd(model_spec: str | None, out: Path, min_: str, opt: str | None, max_: str | None, fp32: bool) -> None:
    """Compile with Torch-TensorRT (dynamo) and save with torch_tensorrt.save to OUT."""
    from .profiles import parse_profile
    from .torch_trt import compile_and_save, import_torch_tensorrt

    import_torch_tensorrt()  # fail before loading the model if the library is absent
    model = load_model(model_spec)
    path = compile_and_save(model, parse_profile(min_, opt, max_, model.in_channels), out, "fp32" if fp32 else "fp16")
    click.echo(f"wrote {path}")


@cli.command("trtexec-cmd")
@click.argument("onnx_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_profile_options
@click.option("--engine", type=click.Path(dir_okay=False, path_type=Path), help="default: ONNX name + .plan")
@click.option("--fp32", is_flag=True, help="FP32 engine (default FP16)")
@click.option("--dla-core", type=int, help="build for this DLA core (needs a static profile: --min only)")
@click.option("--trt", "trt_major", type=click.Choice(["10", "11"]), default="10", show_default=True,
              help="TensorRT major version on the target (JetPack 6: 10)")
@click.option("--timing-cache", type=click.Path(dir_okay=False, path_type=Path), help="default: beside the engine")
@click.option("--workspace-mib", default=1024, show_default=True, type=int)
@click.option("--opt-level", default=3, show_default=True, type=int)
def trtexec_cmd(onnx_file: Path, min_: str, opt: str | None, max_: str | None, engine: Path | None, fp32: bool,
                dla_core: int | None, trt_major: str, timing_cache: Path | None, workspace_mib: int,
                opt_level: int) -> None:
    """Print the trtexec command that builds ONNX_FILE on the target (e.g. a Jetson)."""
    from .onnx import read_graph_info
    from .profiles import parse_profile
    from .trtexec import TrtexecOptions, format_command, trtexec_command

    info = read_graph_info(onnx_file)
    engine = engine or onnx_file.with_suffix(".plan")
    opts = TrtexecOptions(onnx_file, engine, parse_profile(min_, opt, max_, info.in_channels), not fp32,
                          timing_cache or engine.with_suffix(".timing.cache"), workspace_mib, opt_level, dla_core,
                          int(trt_major))
    click.echo(format_command(trtexec_command(info, opts)))


@cli.command("check-trt")
@click.argument("onnx_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check_trt_cmd(onnx_file: Path) -> None:
    """Check ONNX_FILE statically against TensorRT 10's ONNX operator support matrix (no TensorRT needed)."""
    from .onnx import onnx, read_graph_info
    from .trt_support import MATRIX_SOURCE, check_graph

    verdict = check_graph(onnx.load(str(onnx_file)), read_graph_info(onnx_file))
    if not verdict.ok:
        for problem in verdict.problems:
            click.echo(f"{onnx_file}: {problem}", err=True)
        raise ValueError(f"{onnx_file}: {len(verdict.problems)} problem(s) for TensorRT 10 "
                         f"(checked against {MATRIX_SOURCE})")
    click.echo(f"{onnx_file}: ok for TensorRT 10's ONNX parser ({verdict.nodes} nodes; {', '.join(verdict.ops)}; one "
               f"optimisation profile covers every input; checked against {MATRIX_SOURCE})")


@cli.command("parity")
@click.option("--model", "model_spec", default=DEFAULT_MODEL, show_default=True,
              help="registered model name (its bundled weights when there are some) or .safetensors checkpoint")
@click.option("--video", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="clip to compare on [default: the sample clip `vdeblur sample` writes]")
@click.option("--frames", type=click.IntRange(min=2), default=10, show_default=True)
@click.option("--candidates", default=",".join(CANDIDATES), show_default=True, help="comma-separated")
@click.option("--threshold-db", type=float, default=THRESHOLD_DB, show_default=True)
def parity_cmd(model_spec: str, video: Path | None, frames: int, candidates: str, threshold_db: float) -> None:
    """PSNR of faster paths (FP16, torch.compile, CUDA graphs, ONNX) against FP32, state carried; exit 1 below the bar."""
    from .parity import check_parity, markdown_table

    model = load_model(model_spec)
    clip = _read_frames(video, frames)
    results = check_parity(model, clip, [c.strip() for c in candidates.split(",") if c.strip()], threshold_db,
                           log=lambda line: click.echo(line, err=True))
    source = video.name if video else "the sample clip"
    click.echo(f"{model.model_name} on {len(clip)} frames of {source} ({clip[0].shape[1]}x{clip[0].shape[0]}):\n")
    click.echo(markdown_table(results, threshold_db))
    failed = [r.candidate for r in results if r.passed is False]
    if failed:
        raise ValueError(f"parity below {threshold_db:g} dB for: {', '.join(failed)}")


def _bundled_or(spec: str) -> str:
    """A registry name with bundled weights means those weights (parity of random weights says little)."""
    from vdeblur import bundled_model_path

    bundled = bundled_model_path(spec)
    return str(bundled) if not Path(spec).suffix and bundled.is_file() else spec


def _read_frames(video: Path | None, count: int) -> list:
    """The first ``count`` frames of ``video`` (H, W, 3 uint8), or of the sample clip."""
    if video is None:
        from vdeblur.engine.sample import render_sample

        return list(render_sample(frames_per_shot=count)[:count])
    from vdeblur.engine.video_io import DecodedFrame, demux, open_input

    container = open_input(video)
    try:
        out = []
        for item in demux(container, video):
            if isinstance(item, DecodedFrame):  # not another stream's packet
                out.append(item.rgb)
                if len(out) == count:
                    break
        return out
    finally:
        container.close()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: expected errors become one line on stderr and exit code 1 (``--debug``
    shows the traceback); Ctrl-C one line and exit code 130."""
    run_console(cli, "vdeblur-export", SCRIPTS["vdeblur-export"][1], argv, expected=_EXPECTED)


if __name__ == "__main__":
    main()
