"""Batch mode on a local Ray instance (one ``ray.init`` for the module): two clips and one corrupt
input through ``run_batch``, the retry policy on real Ray tasks, and the checks made before any task."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import av
import pytest
from conftest import make_clip

from vdeblur.engine import cluster
from vdeblur.engine.part_files import remove_stale_part_files
from vdeblur.engine.pipeline import EncodeOptions, deblur_video

ray = pytest.importorskip("ray", reason="Ray is the optional 'cluster' extra")

_FAST = EncodeOptions(preset="ultrafast")
_FRAMES = {"walk.mp4": 5, "pan.mkv": 7}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def batch(local_ray, tmp_path_factory, fast_checkpoint):
    src, out = tmp_path_factory.mktemp("in"), tmp_path_factory.mktemp("out")
    make_clip(src / "walk.mp4", width=64, height=48, frames=_FRAMES["walk.mp4"], audio=True)
    make_clip(src / "pan.mkv", width=48, height=32, frames=_FRAMES["pan.mkv"], audio=False)
    (src / "broken.mp4").write_bytes(b"this is not a video" * 50)
    # What a worker killed mid-file leaves behind: the next attempt must remove it.
    stale = out / ".walk.k1ll3d00.part.mp4"
    stale.write_bytes(b"half a video")
    jobs = [(src / name, out / name) for name in ("walk.mp4", "broken.mp4", "pan.mkv")]
    seen: list[cluster.FileResult] = []
    report = cluster.run_batch(jobs, str(fast_checkpoint), num_cpus=1, encode=_FAST, report=out / "report.json",
                               on_result=seen.append)
    return report, out, seen


def test_outputs_exist_and_decode_with_every_frame(batch):
    report, out, _ = batch
    for name, frames in _FRAMES.items():
        with av.open(str(out / name)) as c:
            assert sum(1 for _ in c.decode(video=0)) == frames


def test_bad_input_is_reported_and_leaves_nothing(batch):
    report, out, seen = batch
    by_name = {Path(f.input).name: f for f in report.files}
    bad = by_name["broken.mp4"]
    assert not bad.ok and bad.error_kind == "input" and "not a readable video" in bad.error
    assert [f.ok for f in report.files] == [True, False, True]  # in job order, whatever finished first
    assert len(seen) == 3
    # Only the two finished videos and the report: no output for the bad file, no temporary files
    # (neither this run's nor the one a "killed" earlier attempt left).
    assert sorted(p.name for p in out.iterdir()) == ["pan.mkv", "report.json", "walk.mp4"]
    assert "1 failed" in report.summary() and "broken.mp4" in report.summary()


def test_report_json_has_the_fields(batch):
    _, out, _ = batch
    data = json.loads((out / "report.json").read_text())
    assert data["summary"] == {"files": 3, "ok": 2, "failed": 1, "frames": sum(_FRAMES.values()),
                               "wall_s": data["summary"]["wall_s"]}
    assert data["ray"]["version"] == ray.__version__ and data["ray"]["address"]
    assert data["settings"]["encode"]["preset"] == "ultrafast" and data["settings"]["overwrite"] is False
    assert data["settings"]["device"] == "cpu"  # num_gpus=0: "auto" must not take an unreserved GPU
    for f in data["files"]:
        assert set(f) == {"input", "output", "ok", "frames", "wall_s", "error", "error_kind", "node", "adapt"}
        assert f["adapt"] is None  # no --adapt: nothing to report
    assert [f["frames"] for f in data["files"]] == [5, 0, 7]


@pytest.mark.parametrize("how, attempts, kind", [("network", 2, "system"), ("die", 2, "system"), ("bug", 1, "crash")])
def test_retry_policy(local_ray, tmp_path, how, attempts, kind):
    """Transient errors and dead workers are retried ``max_retries`` times; a bug is not."""
    def attempt(log: str, how: str) -> None:  # nested: Ray ships it by value (workers cannot import tests/)
        with open(log, "a") as f:
            f.write("attempt\n")
        if how == "die":
            os._exit(1)  # the worker process dies, as when the OOM killer or a node failure strikes
        raise {"network": ConnectionError, "bug": RuntimeError}[how](f"{how} on purpose")

    log = tmp_path / "attempts.log"
    ref = ray.remote(attempt).options(**cluster.task_options(0, 1, max_retries=1)).remote(str(log), how)
    result = cluster._collect(ray, ref, "in.mp4", str(tmp_path / "out.mp4"))
    assert log.read_text().count("attempt") == attempts
    assert not result.ok and result.error_kind == kind


def test_stale_part_pattern_is_deblur_videos_own(tmp_path, fast_checkpoint):
    """Catch deblur_video's real temporary file mid-run: the cleanup must match it, and only it."""
    from vdeblur.engine.backends import load_backend

    make_clip(tmp_path / "a.mp4", width=32, height=32, frames=2, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    parts: list[str] = []
    deblur_video(tmp_path / "a.mp4", out / "a.b.mp4", load_backend(str(fast_checkpoint), device="cpu"),
                 encode=_FAST, progress=lambda *_: parts.extend(p.name for p in out.iterdir()))
    [part] = set(parts)
    (out / part).write_bytes(b"left by a killed run")
    assert remove_stale_part_files(out / "a.mp4") == []  # a sibling output's file is not ours
    assert remove_stale_part_files(out / "a.b.mp4") == [out / part]
    assert sorted(p.name for p in out.iterdir()) == ["a.b.mp4"]


def test_refused_before_any_task(local_ray, tmp_path):
    with pytest.raises(ValueError, match="target of both"):
        cluster.run_batch([(tmp_path / "a.mp4", tmp_path / "x.mp4"), (tmp_path / "b.mp4", tmp_path / "x.mp4")])
    with pytest.raises(ValueError, match="needs num_gpus > 0"):
        cluster.run_batch([(tmp_path / "a.mp4", tmp_path / "x.mp4")], device="cuda")
    with pytest.raises(ValueError, match="not writable"):
        cluster.run_batch([(tmp_path / "a.mp4", tmp_path / "x.mp4")], report=tmp_path / "no" / "report.json")
    with pytest.raises(ValueError, match="asks for 1 GPU but the cluster has 0"):
        cluster.run_batch([(tmp_path / "a.mp4", tmp_path / "x.mp4")], num_gpus=1)
    assert ray.is_initialized()  # a caller's Ray instance is left running


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'vdeblur\[cluster\]'"):
        cluster.import_ray()


def test_batch_command_runs_a_folder_and_exits_1_when_a_file_fails(local_ray, tmp_path: Path, fast_checkpoint) -> None:
    from click.testing import CliRunner

    from vdeblur.engine.cli import cli

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    make_clip(src / "a.mp4", width=48, height=32, frames=3, audio=False)
    (src / "b.mp4").write_bytes(b"not a video" * 20)
    result = CliRunner().invoke(cli, ["batch", str(src), str(out), "--model", str(fast_checkpoint), "--preset",
                                      "ultrafast"])
    assert result.exit_code == 1, result.output
    assert "a.mp4: 3 frames" in result.output and "b.mp4: failed (input)" in result.output
    report = json.loads((out / "vdeblur-batch.json").read_text())
    assert [f["ok"] for f in report["files"]] == [True, False] and not (out / "b.mp4").exists()


def test_batch_adapts_each_file_on_its_own_task(local_ray, tmp_path, fast_checkpoint):
    """``vdeblur batch --adapt``: the task adapts its own copy to its file and reports what it did."""
    from vdeblur.engine.adapt import AdaptConfig

    make_clip(tmp_path / "walk.mp4", width=64, height=48, frames=6, audio=True)
    quick = AdaptConfig(budget_s=2, crop=32, train_clips=4, check_clips=2, check_frames=2, sources=2)
    report = cluster.run_batch([(tmp_path / "walk.mp4", tmp_path / "out.mp4")], str(fast_checkpoint),
                               num_cpus=1, encode=_FAST, adapt=quick, report=tmp_path / "report.json")
    (result,) = report.files
    assert result.ok and result.frames == 6 and (tmp_path / "out.mp4").exists()
    assert result.adapt is not None and ("adapted for" in result.adapt or result.adapt.startswith("not adapted"))
    assert json.loads((tmp_path / "report.json").read_text())["files"][0]["adapt"] == result.adapt
