"""``scripts/gpu_session.sh --rehearse``: every stage of the time-boxed GPU run on this CPU at tiny sizes,
the same files out as on the GPU machine and within the runner's limits, nothing written outside its own
folders; the packing's checks, each on a case that breaks one limit; and the photographs' re-encoding."""

import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from vdeblur.train.checkpoint import read_info
from vdeblur.train.config import load_config

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_session.sh"
EXPECTED = ["results.tar.gz", "run.log", "summary.json", "train_state/last.safetensors",
            "train_state/last.train.pt", "train_state/log.csv", "train_state/run.toml"]


def _helper():
    spec = importlib.util.spec_from_file_location("gpu_session", REPO / "scripts" / "gpu_session.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _tree() -> str | None:
    """Every file git sees in the checkout, ignored ones included (None outside a git checkout)."""
    done = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=REPO,
                          capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # Not the Debian photographs, whatever this checkout has: training on scikit-image's photos, the
    # held-out clips (data/eval's and the dense set's) rendered from two of them written as JPEG, as the GPU
    # machine renders them from the photographs. HOME and TMPDIR point into tmp_path so that anything written
    # there shows.
    import cv2
    from skimage import data

    for folder in ("home", "tmp", "photos-test"):
        (tmp_path / folder).mkdir(exist_ok=True)
    for name in ("coffee", "chelsea"):
        cv2.imwrite(str(tmp_path / "photos-test" / f"{name}.jpg"), getattr(data, name)()[..., ::-1])
    return {**os.environ, "PYTHON": sys.executable, "HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path / "tmp"),
            "GPU_RUN_WORK": str(tmp_path / "work"), "TRAIN_PHOTOS": str(tmp_path / "no-photos"),
            "EVAL_DIR": str(tmp_path / "no-eval"), "PHOTOS_TEST": str(tmp_path / "photos-test"),
            "EVAL_DENSE_DIR": str(tmp_path / "no-eval-dense"), "PHOTOS_DENSE": str(tmp_path / "photos-test"), **extra}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("session")
    before = _tree()
    done = subprocess.run(["bash", str(SCRIPT), "--rehearse", str(tmp / "out")], env=_env(tmp), capture_output=True,
                          text=True, timeout=3600, check=False)  # a hang guard, not a speed test
    return done, tmp, before


@pytest.mark.slow
def test_rehearsal_returns_what_the_runner_brings_back(rehearsal) -> None:
    done, tmp, _ = rehearsal
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    out = tmp / "out"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == EXPECTED
    assert _helper().check_limits(out) == []
    with tarfile.open(out / "results.tar.gz") as tar:
        names = tar.getnames()
    assert all(n.startswith("results/") for n in names)
    for part in ("setup/machine.json", "tests/junit.xml", "tests/parity.txt", "figures/latency/bench.json",
                 "figures/stages/bench.json", "figures/multistream.json", "eval/trained/bench.json",
                 "eval/trained-dense/bench.json", "eval/before/bench.json"):
        assert f"results/{part}" in names, part
    assert "=== stage train" in (out / "run.log").read_text()


@pytest.mark.slow
def test_rehearsal_runs_every_stage_and_says_what_needed_cuda(rehearsal) -> None:
    done, tmp, _ = rehearsal
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    status = {s["stage"]: s["status"] for s in summary["stages"]}
    assert status["setup"] == status["figures"] == status["train"] == "ok", summary["stages"]
    assert status["tests"].startswith("skipped: no CUDA GPU"), status
    assert summary["machine"]["cuda_available"] is False and summary["machine"]["imports"]["av"] != "MISSING"
    tests = summary["tests"]  # the -m cuda selection: collected, every one skipped with a reason
    assert tests["total"] >= 9 and tests["skipped"] == tests["total"] and tests["failed"] == 0
    assert all("CUDA" in reason for reason in tests["skip_reasons"]), tests["skip_reasons"]
    latency = {r["backend"]: r for r in summary["figures"]["figures/latency"]["latency"]}
    assert latency["torch-fp32"]["status"] == "ok" and latency["torch-fp32"]["p50_ms"] > 0
    assert latency["torch-fp16"]["status"] == latency["torch-cudagraphs"]["status"] == "skipped"
    assert [r["streams"] for r in summary["figures"]["figures/multistream"]["rows"]] == [1, 2]
    assert "fps end to end" in summary["figures"]["figures/e2e-64x64"]
    assert "skipped: torch-fp16 needs a CUDA GPU" in summary["figures"]["tests/parity"]


@pytest.mark.slow
def test_rehearsal_training_leaves_a_train_state_the_next_run_starts_from(rehearsal) -> None:
    done, tmp, _ = rehearsal
    state = tmp / "out" / "train_state"
    cfg = load_config(state / "run.toml")
    info = read_info(state / "last.safetensors")
    assert info.step == cfg.train.steps == 4 and info.extra["config"] == json.loads(json.dumps(cfg.to_dict()))
    assert cfg.data.sources == ("skimage",)  # no photographs given: scikit-image's
    assert cfg.data.val_sources == (str(tmp / "photos-test"),)  # validated on the dense held-out photographs
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    assert summary["training"]["checkpoint"]["step"] == "4"
    warm = (REPO / "train_state/default/last.safetensors").is_file() and "--init-from" in subprocess.run(
        [sys.executable, "-m", "vdeblur.train.cli", "--help"], capture_output=True, text=True).stdout
    notes = next(s["notes"] for s in summary["stages"] if s["stage"] == "train")
    assert any("not warm-started" in n for n in notes) != warm, notes
    trained = {r["method"]: r for r in summary["figures"]["eval/trained"]["quality"]}
    before = {r["method"]: r for r in summary["figures"]["eval/before"]["quality"]}
    # The committed train_state's model when warm-started (vdeblur_deep now), else the fallback preset's.
    name = cfg.model.name
    assert name == ("vdeblur_deep" if warm else "vdeblur_fast")
    assert set(trained) == {name} and {"input", name} <= set(before)
    assert trained[name]["weights"].endswith("run/last.safetensors")
    assert "GoPro test set" in trained[name]["data"] == before["input"]["data"]
    dense = {r["method"]: r for r in summary["figures"]["eval/trained-dense"]["quality"]}
    assert set(dense) == {name} and "eval_dense" in dense[name]["data"]


@pytest.mark.slow
def test_rehearsal_writes_nothing_outside_its_folders(rehearsal) -> None:
    done, tmp, before = rehearsal
    assert list((tmp / "home").iterdir()) == [] and list((tmp / "tmp").iterdir()) == []
    if before is not None:
        assert _tree() == before


def test_refusals_come_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    done = subprocess.run(["bash", str(SCRIPT), "--rehearse", str(tmp_path / "full")], env=_env(tmp_path),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "is not empty" in done.stderr and len(done.stderr.splitlines()) == 1
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    done = subprocess.run(["bash", str(SCRIPT), "--rehearse", str(tmp_path / "new")],
                          env=_env(tmp_path, STAGES="setup,gpu"), capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "allowed: setup,tests,figures,train" in done.stderr
    assert not (tmp_path / "work").exists() and not (tmp_path / "new").exists()


def test_held_out_clips_are_rendered_as_make_data_renders_them() -> None:
    """The GPU run renders data/eval and data/eval_dense itself (a few MiB of photos travel instead of 40 MiB
    of PNGs): with exactly the arguments of scripts/make_data.sh's lines, data/eval from the same JPEGs."""
    make_data = (REPO / "scripts" / "make_data.sh").read_text().replace("\\\n", " ")
    for variable, folder, photos in (("EVAL_RENDER", "data/eval", "data/photos/test"),
                                     ("DENSE_RENDER", "data/eval_dense", "data/photos/test_dense")):
        line = next(line for line in make_data.splitlines() if f"--out {folder} " in line)
        assert f"--source {photos} " in line
        ours = re.search(rf"^{variable}=\((.*)\)$", SCRIPT.read_text(), re.M)[1].split()
        assert ours == line.split(f"--out {folder} ", 1)[1].split()
    assert 'PHOTOS_TEST=${PHOTOS_TEST:-data/photos/test}' in SCRIPT.read_text()


def test_photographs_are_re_encoded_as_large_as_the_upload_allows(tmp_path: Path, capsys, photo) -> None:
    import cv2

    helper = _helper()
    src, repo = tmp_path / "photos", tmp_path / "repo"
    for split in ("train", "test", "test_dense"):
        (src / split).mkdir(parents=True)
        cv2.imwrite(str(src / split / f"{split}.jpg"), cv2.resize(photo, (1400, 1400))[..., ::-1])
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    full = sum(len(cv2.imencode(".webp", cv2.imread(str(p)), [cv2.IMWRITE_WEBP_QUALITY, 85])[1])
               for split in ("train", "test_dense") for p in (src / split).glob("*.jpg"))
    budget = full // 2  # the photographs at their own size do not fit
    (repo / "ballast.bin").write_bytes(os.urandom(helper.TransferLimits().upload_bytes - helper.UPLOAD_MARGIN - budget))
    assert helper.photos(src, tmp_path / "travel", repo, []) == 0
    written = sorted(p.relative_to(tmp_path / "travel") for p in (tmp_path / "travel").rglob("*.webp"))
    assert written == [Path("test_dense/test_dense.webp"), Path("train/train.webp")]  # test travels as it is
    total = sum(p.stat().st_size for p in (tmp_path / "travel").rglob("*.webp"))
    assert total <= budget and "photos: 2 photos at <=" in capsys.readouterr().out
    sides = {max(cv2.imread(str(p)).shape[:2]) for p in (tmp_path / "travel").rglob("*.webp")}
    assert len(sides) == 1 and sides.pop() < 1400  # one rung for all, smaller than the source: the budget is tight
    (repo / "ballast.bin").write_bytes(os.urandom(helper.TransferLimits().upload_bytes - helper.UPLOAD_MARGIN - 1000))
    assert helper.photos(src, tmp_path / "travel2", repo, []) == 1
    assert "do not fit" in capsys.readouterr().out and not (tmp_path / "travel2").exists()


def test_limit_check_names_every_file_the_device_tool_would_not_return(tmp_path: Path) -> None:
    helper = _helper()
    out = tmp_path / "out"
    (out / "a" / "b" / "c").mkdir(parents=True)
    for i in range(7):
        (out / f"f{i}.json").write_text("{}")
    assert helper.check_limits(out) == []
    (out / "a" / "b" / "deep.txt").write_text("two folders down: still returned")
    assert helper.check_limits(out) == []
    (out / "a" / "b" / "c" / "deeper.txt").write_text("three")
    with (out / "big.pt").open("wb") as f:
        f.truncate(17 * 2**20)
    (out / "a b.txt").write_text("space")
    (out / "link").symlink_to(out / "f0.json")
    problems = "\n".join(helper.check_limits(out))
    for expected in ("deeper.txt is 3 folders down", "big.pt is 17.0 MiB, over 16 MiB", "a b.txt",
                     "link is a link", "files, over 8"):
        assert expected in problems, problems


def test_transfer_limits_are_settings_of_the_runner(tmp_path: Path) -> None:
    helper = _helper()
    limits = helper.TransferLimits.from_env({"RETURN_FILES": "2", "RETURN_FILE_MIB": "0.5", "RETURN_DEPTH": "0",
                                             "UPLOAD_MIB": "1024"})
    assert limits == helper.TransferLimits(upload_bytes=2**30, files=2, file_bytes=2**19, folders=0)
    assert helper.TransferLimits.from_env({}) == helper.TransferLimits()
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    for name in ("x.json", "y.json", "a/z.json"):
        (out / name).write_bytes(bytes(2**19 + 1))
    problems = "\n".join(helper.check_limits(out, limits))
    for expected in ("a/z.json is 1 folders down, over 0", "x.json is 0.5 MiB, over 0.5 MiB", "3 files, over 2"):
        assert expected in problems, problems
    assert helper.check_limits(out) == []  # the defaults take all of it


def test_oversized_training_state_is_split_and_joins_back(tmp_path: Path) -> None:
    helper = _helper()
    data = os.urandom(3 * 2**20 + 5)
    path = tmp_path / "last.train.pt"
    path.write_bytes(data)
    parts = helper.split(path, chunk=2**20)
    assert [p.name for p in parts] == [f"last.train.pt.0{i}" for i in range(4)] and not path.exists()
    assert b"".join(p.read_bytes() for p in sorted(tmp_path.glob("last.train.pt.??"))) == data


def test_run_toml_reads_back_as_the_config_with_its_overrides(tmp_path: Path, capsys) -> None:
    helper = _helper()
    sets = ["train.batch=64", 'data.sources=["data/photos/train", "skimage"]', "optim.lr_g=1e-5",
            "model.overrides={lstm_hidden = 64}", "train.amp=bf16"]
    assert helper.runtoml("vdeblur_fast", tmp_path / "run.toml", sets) == 0
    assert capsys.readouterr().out.strip() == "vdeblur_fast"
    cfg = load_config(tmp_path / "run.toml")
    assert cfg == load_config("vdeblur_fast", sets) and cfg.train.batch == 64 and cfg.optim.lr_g == 1e-5


def test_wheel_check_refuses_wheels_the_device_python_cannot_install(tmp_path: Path, capsys) -> None:
    helper = _helper()
    for name in ("av-18.1.0-cp311-abi3-manylinux_2_28_x86_64.whl", "click-8.1.0-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"x")
    assert helper.wheels(tmp_path) == 0
    for name in ("numba-0.60-cp313-cp313-manylinux_2_28_x86_64.whl", "scipy-1.0-cp312-cp312-macosx_11_0_arm64.whl",
                 "click-8.2.0-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"x")
    assert helper.wheels(tmp_path) == 1
    out = capsys.readouterr().out
    assert "not for CPython 3.12" in out and "not a manylinux x86-64" in out and "two versions of click" in out
