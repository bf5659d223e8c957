"""Which check should decide whether ``--adapt`` keeps its copy: every candidate scored on the same copies.

A run of ``vdeblur.benchmarks.adapt --keep-weights DIR`` writes each clip's fine-tuned copy, kept or
not, and its true gain over the base weights. Adapting again for every candidate check would cost
the budget again and draw other copies (the steps a budget buys vary with the machine's load), so
this reads those copies back and scores them with each check instead: the synthetic held-back pairs
(read from the run) and the real-frame check against each reference of ``realcheck.REFERENCES``.
For each rule it reports what ``--adapt`` would have added per set, its worst clip and how many
clips lose; "every copy" and "a perfect check" (keep exactly the copies that gained) bound them.

    python -m vdeblur.benchmarks.adapt_checks --run benchmarks/results/adapt/agreement/eval \\
        --copies runs/copies --out benchmarks/results/adapt/agreement/checks-eval
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vdeblur.engine.adapt import AdaptConfig
from vdeblur.engine.adapt.adapter import passes_checks
from vdeblur.engine.adapt.realcheck import REFERENCES, checkable, real_frames_gain, window_outputs
from vdeblur.engine.adapt.survey import survey_frames
from vdeblur.engine.backends import resolve_model
from vdeblur.train.checkpoint import load_checkpoint

from .adapt import copy_name
from .quality import gopro_clips


@dataclass(frozen=True)
class CopyReadings:
    data: str  # the run's set and budget, "FOLDER@SECONDS"
    clip: str
    frames: int
    gain: float  # the copy's true PSNR gain over the base weights on the clip, dB
    synthetic: float  # the held-back pairs' reading, dB, as the run measured it
    real: dict[str, float]  # the real-frame check's reading against each reference, dB


def read_copies(run: dict, copies: Path, budget: float | None = None) -> list[CopyReadings]:
    """Every clip of ``run`` (a benchmarks.adapt report) that was fine-tuned, with each check's reading."""
    config = AdaptConfig()
    base, _ = load_checkpoint(resolve_model(run["model"]))
    readings = []
    for key, rows in run["per_clip"].items():
        data, at = key.rsplit("@", 1)
        if budget is not None and float(at) != budget:
            continue
        clips = {c.name: c for c in gopro_clips(Path(data), 1000)}
        for row in rows:
            if row["skipped"]:
                continue
            copy, _ = load_checkpoint(copies / copy_name(data, row["clip"], float(at)))
            frames = clips[row["clip"]].blurred[: row["frames"]]
            survey = survey_frames(list(frames), len(frames), neighbours=config.neighbours)
            real = checkable(survey.candidates[:config.sources])
            base_out, copy_out = window_outputs(base, real), window_outputs(copy, real)
            readings.append(CopyReadings(key, row["clip"], row["frames"], row["tuned_psnr"] - row["base_psnr"],
                                         row["check_gain"],
                                         {r: real_frames_gain(base_out, copy_out, real, r) for r in REFERENCES}))
            print(f"  {key} {row['clip']}: copy {readings[-1].gain:+.2f}, synthetic {row['check_gain']:+.2f}, "
                  + ", ".join(f"{r} {v:+.2f}" for r, v in readings[-1].real.items()), flush=True)
    return readings


Rule = Callable[[CopyReadings], bool]


def rules(margin: float) -> dict[str, Rule]:
    """Keep-or-fall-back rules: the synthetic check alone, with each real-frame reference, and the bounds."""
    out: dict[str, Rule] = {"every copy": lambda r: True, "synthetic alone": lambda r: r.synthetic >= margin}
    for ref in REFERENCES:
        out[f"synthetic + {ref}"] = lambda r, ref=ref: passes_checks(r.synthetic, r.real[ref], margin)
    out["a perfect check"] = lambda r: r.gain > 0
    return out


def rule_table(readings: list[CopyReadings], all_frames: dict[str, int], margin: float) -> str:
    """Per rule and set: what adaptation adds (frame-weighted over all the set's clips, the skipped
    ones at 0), its worst clip, how many clips lose and the share of copies kept."""
    sets = sorted({r.data for r in readings})
    lines = ["| rule | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for name, keep in rules(margin).items():
        cells = []
        for data in sets:
            rs = [r for r in readings if r.data == data]
            added = [r.gain if keep(r) else 0.0 for r in rs]
            mean = sum(a * r.frames for a, r in zip(added, rs)) / all_frames[data]
            losing = sum(a < -0.005 for a in added)
            cells.append(f"{mean:+.2f}, worst {min(added + [0.0]):+.2f}, {losing} lose, {np.mean([keep(r) for r in rs]):.0%} kept")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def clip_table(readings: list[CopyReadings]) -> str:
    lines = ["| data | clip | copy's gain | synthetic | " + " | ".join(REFERENCES) + " |",
             "|---|---|---:|---:|" + "---:|" * len(REFERENCES)]
    lines += [f"| {r.data} | {r.clip} | {r.gain:+.2f} | {r.synthetic:+.2f} | "
              + " | ".join(f"{r.real[ref]:+.2f}" for ref in REFERENCES) + " |" for r in readings]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, action="append", required=True,
                        help="a benchmarks.adapt output folder (its adapt.json), run with --keep-weights")
    parser.add_argument("--copies", type=Path, required=True, help="the --keep-weights folder of those runs")
    parser.add_argument("--budget", type=float, default=None, help="only the copies of this budget")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    readings, all_frames = [], {}
    for folder in args.run:
        run = json.loads((folder / "adapt.json").read_text())
        readings += read_copies(run, args.copies, args.budget)
        for key, rows in run["per_clip"].items():
            all_frames[key] = sum(r["frames"] for r in rows)
    margin = AdaptConfig().keep_margin_db
    report = (f"Every fine-tuned copy of {', '.join(str(f) for f in args.run)} scored by each check "
              f"(`python -m vdeblur.benchmarks.adapt_checks`); synthetic margin {margin:+.2f} dB, real-frame "
              f"check: no loss.\n\n" + rule_table(readings, all_frames, margin) + "\n" + clip_table(readings))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "adapt_checks.md").write_text(report)
    (args.out / "adapt_checks.json").write_text(json.dumps([asdict(r) for r in readings], indent=1))
    print(report)


if __name__ == "__main__":
    main()
