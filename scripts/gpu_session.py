"""The Python half of ``scripts/gpu_session.sh``: machine facts, the run's TOML, stage records, and
packing the results into what the GPU machine's runner returns (``TransferLimits``: by default at most 8
files of at most 16 MiB, no deeper than 2 folders; names of letters, digits, '.', '_' and '-').

    python scripts/gpu_session.py machine OUT.json [--need-cuda]
    python scripts/gpu_session.py wheels DIR             # check carried wheels fit Python 3.12 x86-64
    python scripts/gpu_session.py travel REPO PATH...    # what the call would upload, against UPLOAD_MIB
    python scripts/gpu_session.py photos SRC DST REPO PATH...  # SRC's photos as WebP, as large as the upload allows
    python scripts/gpu_session.py runtoml CONFIG OUT.toml [--set KEY=VALUE ...]
    python scripts/gpu_session.py clip OUT.mp4 WxH FRAMES UNIQUE
    python scripts/gpu_session.py record WORK NAME RC SECONDS
    python scripts/gpu_session.py pack WORK OUT_DIR      # exit 1 when OUT_DIR breaks a limit

Imports of the project and of torch happen inside the commands that need them, so ``pack`` also
works where the set-up stage failed.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib
import json
import os
import re
import shutil
import sys
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 2**20


@dataclass(frozen=True)
class TransferLimits:
    """What one call may upload beside the working tree, and what its runner brings back: settings of the
    runner in use, given to the script in the environment (the names below); the defaults fit a runner
    that takes 64 MiB up and returns 8 files of 16 MiB, 64 MiB in all, at most 2 folders down."""

    upload_bytes: int = 64 * MIB  # UPLOAD_MIB
    files: int = 8  # RETURN_FILES
    file_bytes: int = 16 * MIB  # RETURN_FILE_MIB
    total_bytes: int = 64 * MIB  # RETURN_MIB
    folders: int = 2  # RETURN_DEPTH

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> TransferLimits:
        d = cls()
        return cls(upload_bytes=int(float(env.get("UPLOAD_MIB", d.upload_bytes / MIB)) * MIB),
                   files=int(env.get("RETURN_FILES", d.files)),
                   file_bytes=int(float(env.get("RETURN_FILE_MIB", d.file_bytes / MIB)) * MIB),
                   total_bytes=int(float(env.get("RETURN_MIB", d.total_bytes / MIB)) * MIB),
                   folders=int(env.get("RETURN_DEPTH", d.folders)))


NAME = re.compile(r"[A-Za-z0-9._-]+")
# Modules the run cannot do without; the set-up stage fails, naming the missing ones.
REQUIRED = ("torch", "numpy", "av", "cv2", "numba", "click", "safetensors", "skimage", "scipy", "vdeblur.engine",
            "vdeblur.train", "vdeblur.benchmarks", "pytest")
OPTIONAL = ("onnx", "onnxruntime", "onnxscript", "matplotlib", "PyNvVideoCodec", "tensorrt")


# ---------------------------------------------------------------- set-up

def machine(out: Path, need_cuda: bool) -> int:
    """Write the machine block (benchmarks.report.machine_info plus CUDA facts and imports); 1 when
    a required module is missing, or CUDA is when ``need_cuda``. Required modules are imported (a
    wheel that installs but does not load is missing); optional ones are only looked up."""
    from importlib import metadata, util

    imports = {}
    for name in REQUIRED:
        try:
            module = importlib.import_module(name)
            imports[name] = str(getattr(module, "__version__", "ok"))
        except Exception as e:  # an import can fail in many ways (missing driver, ABI); each is one fact here
            imports[name] = f"MISSING: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    for name in OPTIONAL:
        found = util.find_spec(name) is not None
        distribution = {"PyNvVideoCodec": "pynvvideocodec"}.get(name, name)
        try:
            imports[name] = metadata.version(distribution) if found else "MISSING"
        except metadata.PackageNotFoundError:
            imports[name] = "ok"
    info: dict[str, Any] = {"imports": imports}
    if not imports["torch"].startswith("MISSING"):
        import torch

        info["torch"] = torch.__version__
        info["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info |= {"gpu_name": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                     "gpu_capability": f"{props.major}.{props.minor}", "gpu_multiprocessors": props.multi_processor_count,
                     "cudnn": torch.backends.cudnn.version()}
        if not imports["vdeblur.benchmarks"].startswith("MISSING"):
            from vdeblur.benchmarks.report import machine_info

            info |= machine_info()
    if not imports["onnxruntime"].startswith("MISSING"):
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(info, indent=2) + "\n")
    missing = [n for n in REQUIRED if imports[n].startswith("MISSING")]
    for name in missing:
        print(f"set-up: required module {name}: {imports[name]}")
    print(f"set-up: torch {info.get('torch')}, CUDA available: {info.get('cuda_available')}, "
          f"GPU {info.get('gpu_name')}, driver {info.get('gpu_driver')}, CUDA {info.get('cuda')}")
    if need_cuda and not info.get("cuda_available"):
        print("set-up: torch sees no CUDA GPU on the GPU machine")
        return 1
    return 1 if missing else 0


def wheels(folder: Path) -> int:
    """Check (not install) the carried wheels: each for CPython 3.12 (or abi3 <= 3.12) on manylinux
    x86-64, one version per project; print sizes and the total."""
    problems, seen, total = [], {}, 0
    for path in sorted(folder.glob("*.whl")):
        parts = path.name[:-4].split("-")
        name, python, abi, platform = parts[0].lower(), parts[-3], parts[-2], parts[-1]
        total += path.stat().st_size
        print(f"wheel {path.name}: {path.stat().st_size / 2**20:.1f} MiB")
        if name in seen:
            problems.append(f"two versions of {name}: {seen[name]} and {path.name} (pip refuses to install both)")
        seen[name] = path.name
        cpython = re.fullmatch(r"cp3(\d+)", python)
        if not (python == "py3" or (cpython and (int(cpython[1]) == 12 or (abi == "abi3" and int(cpython[1]) <= 12)))):
            problems.append(f"{path.name} is not for CPython 3.12")
        if platform != "any" and not re.search(r"manylinux\w*_x86_64", platform):
            problems.append(f"{path.name} is not a manylinux x86-64 wheel")
    print(f"wheels: {len(seen)} in {folder}, {total / 2**20:.1f} MiB in all")
    for problem in problems:
        print(f"wheels: {problem}")
    return 1 if problems else 0


def _upload_sizes(repo: Path, carry: list[str]) -> dict[str, int]:
    """Bytes per part of an upload: the tree git sees (tracked and untracked-not-ignored files), then
    each carried path (0 for one that is not here)."""
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo, capture_output=True,
                            check=True).stdout.decode().split("\0")
    sizes = {"tree": sum((repo / f).lstat().st_size for f in listed if f and (repo / f).exists())}
    for path in carry:
        root = repo / path
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
        sizes[path] = sum(f.stat().st_size for f in files)
    return sizes


def travel(repo: Path, carry: list[str], limits: TransferLimits = TransferLimits()) -> int:
    """What the call uploads: the tree plus the carried paths; 1 when that is over the upload limit.
    Run here, before the call."""
    sizes = _upload_sizes(repo, carry)
    for path in carry:
        if not (repo / path).exists():
            print(f"travel: {path} is not here (not carried)")
    total = sum(sizes.values())
    print("travel: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sizes.items()) +
          f"; {total / 2**20:.1f} of {limits.upload_bytes / MIB:g} MiB")
    if total > limits.upload_bytes:
        print(f"travel: over the upload limit of {limits.upload_bytes / MIB:g} MiB: carry less (or commit less)")
        return 1
    return 0


# (long side px, WebP quality), best first: the largest photos that fit beside the rest of the upload.
# 1024 px keeps every GCompris and OpenCV photo at its own size; below that, training crops see more scene.
PHOTO_LADDER = ((1600, 85), (1280, 85), (1024, 85), (1024, 78), (896, 78), (768, 78), (640, 78), (512, 75),
                (384, 75))
# The splits re-encoded: data/eval's five photographs travel as they are (data/photos/test), so that data/eval
# rendered on the GPU machine is the very set make_data.sh renders here.
PHOTO_SPLITS = ("train", "test_dense")
UPLOAD_MARGIN = 2**20  # what else may appear in the tree between this check and the call


def photos(src: Path, dst: Path, repo: Path, carry: list[str], limits: TransferLimits = TransferLimits()) -> int:
    """Re-encode every ``SRC/SPLIT/NAME.jpg`` of PHOTO_SPLITS as ``DST/SPLIT/NAME.webp`` at the first rung of
    PHOTO_LADDER whose total fits in the upload limit less the tree and the other carried paths; 1 when none fits."""
    import cv2

    budget = limits.upload_bytes - UPLOAD_MARGIN - sum(_upload_sizes(repo, [c for c in carry if Path(c) != dst]).values())
    images = {p.relative_to(src).with_suffix(".webp"): cv2.imread(str(p), cv2.IMREAD_COLOR)
              for split in PHOTO_SPLITS for p in sorted((src / split).glob("*.jpg"))}
    if not images:
        print(f"photos: no {{{','.join(PHOTO_SPLITS)}}}/NAME.jpg under {src} (bash scripts/fetch_photos.sh makes them)")
        return 1
    for long_side, quality in PHOTO_LADDER:
        encoded = {}
        for rel, image in images.items():
            h, w = image.shape[:2]
            scale = min(1.0, long_side / max(h, w))
            if scale < 1:
                image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            encoded[rel] = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, quality])[1].tobytes()
        total = sum(len(b) for b in encoded.values())
        if total <= budget:
            shutil.rmtree(dst, ignore_errors=True)
            for rel, data in encoded.items():
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                (dst / rel).write_bytes(data)
            print(f"photos: {len(encoded)} photos at <= {long_side} px, WebP quality {quality}: "
                  f"{total / 2**20:.1f} MiB of the {budget / 2**20:.1f} MiB left in the upload, in {dst}")
            return 0
    print(f"photos: even {PHOTO_LADDER[-1][0]} px photos ({total / 2**20:.1f} MiB) do not fit the "
          f"{budget / 2**20:.1f} MiB left in the upload: carry less")
    return 1


# ---------------------------------------------------------------- the run's config

def runtoml(config: str, out: Path, sets: list[str]) -> int:
    """The complete config (preset or file + overrides) as TOML, read back to check it is the same."""
    from vdeblur.train.config import load_config, to_toml

    cfg = load_config(config, sets)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# written by scripts/gpu_session.py from {config} with {sets or 'no overrides'}\n\n" + to_toml(cfg))
    if load_config(out) != cfg:
        raise SystemExit(f"{out} does not read back as the config it was written from")
    print(cfg.model.name)  # the shell takes the model name from here
    return 0


def clip(out: Path, size: str, frames: int, unique: int) -> int:
    """A shaken clip of ``frames`` frames that cycles through ``unique`` rendered ones: rendering a
    1080p shake frame takes about a second of CPU, encoding it a few milliseconds. A cycle longer
    than x264's reference frames (3 at preset medium) leaves the encoder nothing cheaper to do."""
    import av

    from vdeblur.benchmarks.cli import parse_resolution
    from vdeblur.benchmarks.stages import make_test_video

    width, height = parse_resolution(size)
    rendered = out.with_name(out.stem + "-unique.mp4")
    make_test_video(rendered, width, height, min(unique, frames))
    with av.open(str(rendered)) as c:
        cycle = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(out), mode="w") as container:
        stream = container.add_stream("libx264", rate=30, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(cycle[i % len(cycle)], format="rgb24")))
        container.mux(stream.encode(None))
    rendered.unlink()
    print(f"{out}: {frames} frames of {width}x{height}, cycling {len(cycle)} rendered ones")
    return 0


# ---------------------------------------------------------------- stage records

def record(work: Path, name: str, rc: int, seconds: float) -> int:
    """WORK/stages/NN-NAME.json: status from the exit code, or from WORK/stages/NAME.status when the
    stage wrote one ("skipped" and why: no CUDA here)."""
    folder = work / "stages"
    folder.mkdir(parents=True, exist_ok=True)
    override = folder / f"{name}.status"
    status = {0: "ok", 124: "timed out", 137: "timed out (killed)"}.get(rc, "failed")
    notes = folder / f"{name}.notes"
    entry = {"stage": name, "rc": rc, "seconds": round(seconds, 1), "status": status,
             "notes": notes.read_text().splitlines() if notes.exists() else []}
    if override.exists() and rc == 0:
        entry["status"] = override.read_text().strip()
    index = len(list(folder.glob("*.json")))
    (folder / f"{index:02d}-{name}.json").write_text(json.dumps(entry, indent=2) + "\n")
    print(f"stage {name}: {entry['status']} in {entry['seconds']} s")
    return 0


def _stages(work: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((work / "stages").glob("*.json"))]


def _tests(junit: Path) -> dict[str, Any]:
    if not junit.is_file():
        return {}
    try:
        root = ET.parse(junit).getroot()
    except ET.ParseError:
        return {"error": f"{junit.name} is incomplete (the stage was cut off?)"}
    result: dict[str, Any] = {"total": 0, "passed": 0, "failed": 0, "skipped": 0, "failures": [], "skip_reasons": {}}
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        result["total"] += 1
        failure = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            result["failed"] += 1
            result["failures"].append({"test": name, "message": (failure.get("message") or "")[:500]})
        elif skipped is not None:
            result["skipped"] += 1
            reason = skipped.get("message") or ""
            result["skip_reasons"][reason] = result["skip_reasons"].get(reason, 0) + 1
        else:
            result["passed"] += 1
    return result


# ---------------------------------------------------------------- figures for the summary

def _bench_rows(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    keep = ("model", "backend", "width", "height", "status", "reason", "device", "p50_ms", "p95_ms", "fps", "peak_gpu_mib")
    return {"command": data.get("command"),
            "latency": [{k: r.get(k) for k in keep} for r in data.get("latency", [])],
            "stages": data.get("stages", []),
            "quality": [{k: r.get(k) for k in ("method", "weights", "psnr", "ssim", "frames", "data")} for r in
                        data.get("quality", [])],
            "notes": data.get("notes", [])}


def _figures(results: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for path in sorted(results.glob("*/*/bench.json")):
        figures[f"{path.parent.parent.name}/{path.parent.name}"] = _bench_rows(path)
    for path in sorted(results.glob("*/*.json")):
        if path.name == "multistream.json":
            data = json.loads(path.read_text())
            figures[f"{path.parent.name}/multistream"] = {"command": data["command"], "rows": data["rows"]}
    for path in sorted(results.glob("*/*.txt")):
        figures[f"{path.parent.name}/{path.stem}"] = path.read_text()[-4000:]
    return figures


def _training(work: Path) -> dict[str, Any]:
    run = work / "run"
    info: dict[str, Any] = {}
    log = run / "log.csv"
    if log.is_file():
        with log.open(newline="") as f:
            rows = list(csv.DictReader(f))
        info["log_rows"] = len(rows)
        info["last_rows"] = rows[-3:]
        val = [r for r in rows if r.get("val_psnr")]
        info["last_validation"] = val[-1] if val else None
    ckpt = run / "last.safetensors"
    if ckpt.is_file():
        meta = _safetensors_meta(ckpt)
        info["checkpoint"] = {"model": meta.get("model"), "step": meta.get("step"),
                              "metrics": json.loads(meta.get("metrics", "{}"))}
    return info


def _safetensors_meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}


# ---------------------------------------------------------------- packing

def _copy(src: Path, dst: Path) -> None:
    """Copy beside the target, then rename: OUT_DIR never holds half a file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(dst.name + ".part")
    shutil.copyfile(src, part)
    part.replace(dst)


def _copy_train_state(work: Path, out: Path, limits: TransferLimits) -> None:
    """The run as train_state/<name>/ holds it: ``vdeblur.train.pack`` (run.toml, last.safetensors,
    log.csv and a slim last.train.pt: no raw weights, no Adam moments); before the first checkpoint, run.toml alone. The
    trainer writes last.safetensors then last.train.pt; a save between pack's two reads would pair
    states of different steps, so pack again until their steps agree."""
    run, dst = work / "run", out / "train_state"
    for stale in dst.glob("last.train.pt.??"):  # parts of an earlier, larger state
        stale.unlink()
    if not all((run / name).is_file() for name in ("last.train.pt", "last.safetensors", "log.csv")):
        if (work / "run.toml").is_file():
            _copy(work / "run.toml", dst / "run.toml")
        return
    from vdeblur.train.pack import pack_run

    for _ in range(3):
        pack_run(run, dst)
        if _same_step(dst):
            break
    else:
        print("pack: last.safetensors and last.train.pt kept from different steps (the trainer kept saving)")
    for path in sorted(dst.glob("*")):
        if path.stat().st_size > limits.file_bytes:
            split(path, limits.file_bytes - MIB)


def split(path: Path, chunk: int) -> list[Path]:
    """A file over the size a returned file may have (the training state of a larger model) as NAME.00,
    NAME.01, ... of ``chunk`` bytes: ``cat NAME.?? > NAME`` joins them."""
    parts = []
    with path.open("rb") as f:
        while data := f.read(chunk):
            parts.append(path.with_name(f"{path.name}.{len(parts):02d}"))
            parts[-1].write_bytes(data)
    path.unlink()
    return parts


def _same_step(folder: Path) -> bool:
    import torch  # here, not at the top: pack must work where the set-up failed

    state = torch.load(folder / "last.train.pt", map_location="cpu", weights_only=False)
    return str(state.get("step")) == _safetensors_meta(folder / "last.safetensors").get("step")


def _tar(results: Path, out: Path, skip: tuple[str, ...]) -> None:
    part = out.with_name(out.name + ".part")
    with tarfile.open(part, "w:gz") as tar:
        for path in sorted(results.rglob("*")):
            if path.is_file() and not path.name.endswith(skip):
                tar.add(path, arcname=str(path.relative_to(results.parent)))
    part.replace(out)


def check_limits(out: Path, limits: TransferLimits = TransferLimits()) -> list[str]:
    """What in ``out`` the runner would not bring back, one line each; [] when all of it comes."""
    problems, total = [], 0
    files = [p for p in out.rglob("*") if p.is_file() or p.is_symlink()]
    for path in files:
        rel = path.relative_to(out)
        if path.is_symlink():
            problems.append(f"{rel} is a link (links do not come back)")
            continue
        size = path.stat().st_size
        total += size
        if size > limits.file_bytes:
            problems.append(f"{rel} is {size / 2**20:.1f} MiB, over {limits.file_bytes / MIB:g} MiB")
        if len(rel.parts) - 1 > limits.folders:
            problems.append(f"{rel} is {len(rel.parts) - 1} folders down, over {limits.folders}")
        bad = [part for part in rel.parts if not NAME.fullmatch(part)]
        if bad:
            problems.append(f"{rel}: {bad} has characters other than letters, digits, '.', '_' and '-'")
    if len(files) > limits.files:
        problems.append(f"{len(files)} files, over {limits.files}: {sorted(str(p.relative_to(out)) for p in files)}")
    if total > limits.total_bytes:
        problems.append(f"{total / 2**20:.1f} MiB in all, over {limits.total_bytes / MIB:g} MiB")
    return problems


def pack(work: Path, out: Path, limits: TransferLimits = TransferLimits()) -> int:
    """summary.json, run.log, results.tar.gz and train_state/ into ``out``; 1 if a limit is broken."""
    out.mkdir(parents=True, exist_ok=True)
    if (work / "run.log").is_file():
        log = (work / "run.log").read_bytes()
        (out / "run.log.part").write_bytes(log[-(limits.file_bytes - MIB):])  # the end, where a failure is
        (out / "run.log.part").replace(out / "run.log")
    results = work / "results"
    notes = []
    if results.is_dir():
        _tar(results, out / "results.tar.gz", ())
        if (out / "results.tar.gz").stat().st_size > limits.file_bytes - MIB:
            _tar(results, out / "results.tar.gz", (".png", ".mp4", ".mkv"))
            notes.append(f"results.tar.gz: plots and videos left out to stay under {limits.file_bytes / MIB:g} MiB")
    _copy_train_state(work, out, limits)
    run = json.loads((work / "run.json").read_text()) if (work / "run.json").is_file() else {}
    run["packed"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    machine_file = results / "setup" / "machine.json"
    summary = {
        "run": run,
        "machine": json.loads(machine_file.read_text()) if machine_file.is_file() else None,
        "stages": _stages(work),
        "tests": _tests(results / "tests" / "junit.xml"),
        "figures": _figures(results) if results.is_dir() else {},
        "training": _training(work),
        "notes": notes,
    }
    (out / "summary.json.part").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "summary.json.part").replace(out / "summary.json")
    problems = check_limits(out, limits)
    if problems:  # written into the summary too, so that it comes back even when the rest does not
        summary["limit_problems"] = problems
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    for problem in problems:
        print(f"pack: {problem}")
    sizes = ", ".join(f"{p.relative_to(out)} {p.stat().st_size / 2**20:.2f} MiB" for p in sorted(out.rglob("*"))
                      if p.is_file())
    print(f"pack: {out}: {sizes}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("machine")
    p.add_argument("out", type=Path)
    p.add_argument("--need-cuda", action="store_true")
    sub.add_parser("wheels").add_argument("folder", type=Path)
    p = sub.add_parser("travel")
    p.add_argument("repo", type=Path)
    p.add_argument("carry", nargs="*")
    p = sub.add_parser("photos")
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("repo", type=Path)
    p.add_argument("carry", nargs="*")
    p = sub.add_parser("runtoml")
    p.add_argument("config")
    p.add_argument("out", type=Path)
    p.add_argument("--set", dest="sets", action="append", default=[])
    p = sub.add_parser("clip")
    p.add_argument("out", type=Path)
    p.add_argument("size")
    p.add_argument("frames", type=int)
    p.add_argument("unique", type=int)
    p = sub.add_parser("record")
    p.add_argument("work", type=Path)
    p.add_argument("name")
    p.add_argument("rc", type=int)
    p.add_argument("seconds", type=float)
    p = sub.add_parser("pack")
    p.add_argument("work", type=Path)
    p.add_argument("out", type=Path)
    a = parser.parse_args(argv)
    if a.command == "machine":
        return machine(a.out, a.need_cuda)
    if a.command == "wheels":
        return wheels(a.folder)
    if a.command == "travel":
        return travel(a.repo, a.carry, TransferLimits.from_env())
    if a.command == "photos":
        return photos(a.src, a.dst, a.repo, a.carry, TransferLimits.from_env())
    if a.command == "runtoml":
        return runtoml(a.config, a.out, a.sets)
    if a.command == "clip":
        return clip(a.out, a.size, a.frames, a.unique)
    if a.command == "record":
        return record(a.work, a.name, a.rc, a.seconds)
    return pack(a.work, a.out, TransferLimits.from_env())


if __name__ == "__main__":
    sys.exit(main())
