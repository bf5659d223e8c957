"""``vdeblur-train``: train a registered generator from a preset or a TOML config.

    vdeblur-train --config vdeblur_fast --steps 2000 --out runs/fast
    vdeblur-train --config runs/fast/my.toml --resume --out runs/fast
    torchrun --nproc_per_node 4 -m vdeblur.train.cli --config deblurgan --set loss.vgg_weights=vgg19.pth
"""

from __future__ import annotations

from pathlib import Path

import click

from vdeblur.console import ConsoleCommand, reach, run_console
from vdeblur.launch import SCRIPTS

# Errors a user can fix from the command line; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, ImportError, OSError)


@click.command(cls=ConsoleCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", metavar="PRESET|FILE.toml", help="a preset name (see --list-presets) or a TOML file")
@click.option("--steps", type=click.IntRange(min=1), help="total training steps (overrides train.steps)")
@click.option("--out", type=click.Path(path_type=Path), help="run folder for checkpoints and log.csv [runs/<preset>]")
@click.option("--resume", is_flag=True, help="continue the run in --out exactly where its last checkpoint left it")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N (torchrun sets the GPU per rank)")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a config value, e.g. train.batch=8 (repeatable)")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), metavar="MINUTES",
              help="stop (with a checkpoint) after this much training time; --resume continues")
@click.option("--cpu-limit", type=click.FloatRange(min=0, min_open=True), metavar="MINUTES",
              help="stop (with a checkpoint) once the run's training CPU time, summed over resumes, reaches this")
@click.option("--init-from", type=click.Path(path_type=Path), metavar="RUN_DIR",
              help="start from another run's weights (fresh optimiser and schedule; the config may differ but for the model)")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (1 is fastest on a busy shared machine)")
@click.option("--list-presets", "show_presets", is_flag=True, help="print the preset names and exit")
@click.option("--debug", is_flag=True, help="show tracebacks")
def cli(config: str | None, steps: int | None, out: Path | None, resume: bool, device: str, sets: tuple[str, ...],
         time_limit: float | None, cpu_limit: float | None, init_from: Path | None, threads: int | None,
         show_presets: bool, debug: bool) -> None:
    """Train a deblurring generator (GAN or content-only) with checkpoints and exact resume."""
    if show_presets:
        from .config import list_presets

        click.echo("\n".join(list_presets()))
        return
    if not config:
        raise click.UsageError("give --config PRESET|FILE.toml (or --list-presets)")
    if resume and init_from:
        raise click.UsageError("--resume continues a run in --out; --init-from starts a new one: give one of them")
    # torch and the training code load only now, after the arguments were checked: help and usage
    # errors come without waiting for them.
    reach("imports")
    import torch

    if threads:
        torch.set_num_threads(threads)
    try:
        train(config, steps, out, resume, device, sets, time_limit, cpu_limit, init_from)
    except USER_ERRORS as e:
        if debug:
            raise
        # KeyError's str() adds quotes around the message; show its text as is.
        raise click.ClickException(str(e.args[0] if isinstance(e, KeyError) and e.args else e)) from None


def train(config: str, steps: int | None, out: Path | None, resume: bool, device: str, sets: tuple[str, ...],
          time_limit: float | None, cpu_limit: float | None = None, init_from: Path | None = None) -> None:
    from .config import load_config, preset_path
    from .distributed import setup, teardown
    from .trainer import Trainer

    cfg = load_config(config, [*sets, *([f"train.steps={steps}"] if steps else [])])
    out = out or Path("runs") / preset_path(config).stem
    info = setup(device)
    try:
        trainer = Trainer(cfg, out, info, resume=resume, init_from=init_from)
        if info.is_main:
            click.echo(f"{cfg.model.name}: {sum(p.numel() for p in trainer.g.parameters()) / 1e6:.2f} M params, "
                       f"{info.world_size} process(es) on {info.device}, step {trainer.step} -> {cfg.train.steps}, out {out}")
        metrics = trainer.run(time_limit_s=time_limit * 60 if time_limit else None,
                              cpu_limit_s=cpu_limit * 60 if cpu_limit else None)
        if info.is_main:
            shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
            click.echo(f"stopped at step {trainer.step}: {shown}; checkpoint {out / 'last.safetensors'}")
    finally:
        teardown(info)


def main() -> None:
    run_console(cli, "vdeblur-train", SCRIPTS["vdeblur-train"][1])


if __name__ == "__main__":
    main()
