"""The trainer: configs, real optimisation, exact resume, and every preset through ``vdeblur-train``."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import write_tiny_gopro

from vdeblur.train.cli import cli as main
from vdeblur.train.config import Config, ConfigError, apply_sets, from_dict, list_presets, load_config
from vdeblur.train.distributed import DistInfo
from vdeblur.train.registry import list_models
from vdeblur.train.synth import ShakeConfig
from vdeblur.train.trainer import Trainer

CPU = DistInfo(0, 1, torch.device("cpu"))
# Per preset: model widths shrunk so one step takes well under a second on a CPU.
TINY_MODEL = {
    "pix2pix": "{base_channels = 4, num_downs = 5}",
    "deblurgan": "{ngf = 4, n_blocks = 1}",
    "deblurgan_feedback": "{ngf = 4, n_blocks = 1, iterations = 2}",
    "rir": "{channels = 8, groups = 1, blocks_per_group = 1}",
    "vdeblur_fast": "{channels = [8, 8, 8, 8], res_blocks = [0, 0, 0, 0], lstm_hidden = 8}",
    "vdeblur_deep": "{channels = [8, 8, 8, 8], enc_blocks = [0, 1, 1, 1], dec_blocks = [0, 1, 0], lstm_hidden = 8, feedback = 4}",
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def gopro(tmp_path_factory, photo) -> Path:
    return write_tiny_gopro(tmp_path_factory.mktemp("gopro"), photo)


def tiny_sets(preset: str, root: Path) -> list[str]:
    family = next(k for k in sorted(TINY_MODEL, key=len, reverse=True) if preset.startswith(k))
    return [f"model.overrides={TINY_MODEL[family]}", "model.discriminator_overrides={base_channels = 4}",
            "data.kind=gopro", f"data.root='{root}'", "data.val_size=0", "data.val_sequences=1", "data.val_frames=0",
            "train.batch=2", "train.crop=32", "train.window=2", "train.log_every=1", "optim.warmup_steps=0"]


def test_every_registered_model_has_a_preset() -> None:
    from vdeblur.train.foreign import layouts

    # The architectures of other projects' released files run from those files; the presets cover every
    # model this project trains.
    published = {name for layout in layouts() for name in layout.archs}
    assert published and set(list_presets()) == set(list_models()) - published


def test_config_refuses_unknown_keys_and_bad_types() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['train.stepz'\]; allowed in \[train\]"):
        from_dict({"train": {"stepz": 3}})
    with pytest.raises(ConfigError, match="unknown key.*'optimizer'"):
        from_dict({"optimizer": {}})
    with pytest.raises(ConfigError, match=r"train.batch must be int; got '8'"):
        from_dict({"train": {"batch": "8"}})
    with pytest.raises(ConfigError, match="loss.gan = 'wgan' is not allowed; choose one of none, vanilla"):
        load_config("pix2pix", ["loss.gan=wgan"])
    with pytest.raises(ConfigError, match="unknown preset 'pix2px'; presets: deblurgan"):
        load_config("pix2px")
    with pytest.raises(ConfigError, match="not section.key=value"):
        apply_sets({}, ["steps=3"])


def test_sets_parse_toml_values_and_bare_words() -> None:
    cfg = load_config("rir", ["train.steps=7", "optim.betas=[0.5, 0.9]", "model.name=rir_large", "loss.content=l2",
                              "model.overrides={channels = 16}"])
    assert (cfg.train.steps, cfg.optim.betas, cfg.model.name, cfg.loss.content) == (7, (0.5, 0.9), "rir_large", "l2")
    assert cfg.model.overrides == {"channels": 16} and isinstance(cfg, Config)
    with pytest.raises(AttributeError):
        cfg.train.steps = 3  # frozen


def test_training_steps_reduce_the_loss(gopro: Path, tmp_path: Path) -> None:
    cfg = load_config("vdeblur_fast", tiny_sets("vdeblur_fast", gopro) + ["optim.lr_g=3e-3", "optim.schedule=constant"])
    trainer = Trainer(cfg, tmp_path / "run", CPU)
    batch = next(trainer.batches())
    losses = [trainer.train_step(batch)["content"] for _ in range(60)]
    assert losses[-1] < 0.7 * losses[0], losses[::10]


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {f"g.{k}": v for k, v in trainer.g.state_dict().items()}
    out |= {f"ema.{k}": v for k, v in trainer.ema.module.state_dict().items()}
    out |= {f"d.{k}": v for k, v in trainer.critic.state_dict().items()}
    for name, opt in (("opt_g", trainer.opt_g), ("opt_d", trainer.opt_d)):
        for i, s in opt.state_dict()["state"].items():
            out |= {f"{name}.{i}.{k}": v for k, v in s.items()}
    return out


def test_resume_is_bit_identical(gopro: Path, tmp_path: Path) -> None:
    # WGAN-GP draws random interpolation points, a recurrent model carries state, and the 6 training
    # windows make 3 batches an epoch, so the run stops mid-epoch and crosses an epoch boundary after.
    sets = tiny_sets("vdeblur_fast", gopro) + ["loss.gan=wgan_gp", "loss.gan_weight=0.1", "loss.critic_steps=2",
                                               "model.discriminator=patchgan_wgan", "train.steps=6", "train.ckpt_every=2",
                                               "train.grad_clip=0.5", "train.ema_decay=0.9"]
    cfg = load_config("vdeblur_fast", sets)
    straight = Trainer(cfg, tmp_path / "straight", CPU)
    straight.run()
    first = Trainer(cfg, tmp_path / "resumed", CPU)
    first.run(until=2)
    resumed = Trainer(cfg, tmp_path / "resumed", CPU, resume=True)
    assert (resumed.step, resumed.epoch, resumed.batch_in_epoch) == (2, 0, 2)
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    assert not torch.equal(a["g.head.0.weight"], _state(Trainer(cfg, tmp_path / "fresh", CPU))["g.head.0.weight"])
    with (tmp_path / "resumed" / "log.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5, 6]


def test_device_data_trains_and_resumes_bit_identically(gopro: Path, tmp_path: Path) -> None:
    # data.kind = "device": batches rendered by the trainer on its own device (the CPU here), from
    # (seed, rank, step) alone, so a resumed run sees the very batches the straight run saw.
    sets = [s for s in tiny_sets("vdeblur_fast", gopro) if not s.startswith(("data.", "train.crop"))]
    sets += ["data.kind=device", "data.sources=['skimage']", "data.val_size=32", "data.val_sequences=1",
             "train.crop=32", "loss.gan=wgan_gp", "loss.gan_weight=0.1", "model.discriminator=patchgan_wgan",
             "train.steps=4", "train.ckpt_every=2"]
    cfg = load_config("vdeblur_fast", sets)
    straight = Trainer(cfg, tmp_path / "straight", CPU)
    batch = next(straight.batches())
    assert batch["blurred"].shape == (2, 2, 3, 32, 32) and type(straight.train_set).__name__ == "DeviceShakeBatches"
    straight.run()
    first = Trainer(cfg, tmp_path / "resumed", CPU)
    first.run(until=2)
    resumed = Trainer(cfg, tmp_path / "resumed", CPU, resume=True)
    assert resumed.step == 2
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    other = Trainer(load_config("vdeblur_fast", sets + ["train.seed=1"]), tmp_path / "other", CPU)
    assert not torch.equal(next(other.batches())["sharp"], batch["sharp"])
    with pytest.raises(ConfigError, match="data.kind = 'devise' is not allowed; choose one of synthetic, gopro, device"):
        load_config("vdeblur_fast", ["data.kind=devise"])
    with pytest.raises(ConfigError, match="data.val_size = 0 .* device clips need a size"):
        load_config("vdeblur_fast", ["data.kind=device", "data.val_size=0"])


def test_resume_refuses_a_changed_config(gopro: Path, tmp_path: Path) -> None:
    cfg = load_config("rir", tiny_sets("rir", gopro) + ["train.steps=1"])
    Trainer(cfg, tmp_path, CPU).run()
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        Trainer(cfg, tmp_path, CPU)
    changed = load_config("rir", tiny_sets("rir", gopro) + ["train.steps=1", "optim.lr_g=1e-3"])
    with pytest.raises(ConfigError, match=r"config differs in \['optim.lr_g'\]"):
        Trainer(changed, tmp_path, CPU, resume=True)
    with pytest.raises(ConfigError, match="nothing to resume"):
        Trainer(cfg, tmp_path / "empty", CPU, resume=True)


def test_resume_of_a_state_saved_before_a_config_key_existed(gopro: Path, tmp_path: Path) -> None:
    # train_state/default was saved before data.min_detail existed: a fresh clone must still resume it,
    # as the key's default is the old behaviour; another value than the default is still a change.
    cfg = load_config("rir", tiny_sets("rir", gopro) + ["train.steps=2"])
    Trainer(cfg, tmp_path, CPU).run(cpu_limit_s=0.0)
    path = tmp_path / "last.train.pt"
    state = torch.load(path, weights_only=False)
    del state["config"]["data"]["min_detail"]
    torch.save(state, path)
    resumed = Trainer(cfg, tmp_path, CPU, resume=True)
    assert resumed.step == 1
    with pytest.raises(ConfigError, match=r"config differs in \['data.min_detail'\] \(saved \[0.0\], now \[2.0\]\)"):
        Trainer(load_config("rir", tiny_sets("rir", gopro) + ["train.steps=2", "data.min_detail=2.0"]), tmp_path, CPU,
                resume=True)


def test_time_limit_stops_with_a_checkpoint(gopro: Path, tmp_path: Path) -> None:
    trainer = Trainer(load_config("rir", tiny_sets("rir", gopro) + ["train.steps=50"]), tmp_path, CPU)
    metrics = trainer.run(time_limit_s=0.0)
    assert trainer.step == 1 and set(metrics) == {"val_psnr", "val_ssim", "val_input_psnr", "val_input_ssim",
                                                  "fit_psnr", "fit_input_psnr"}
    assert torch.load(tmp_path / "last.train.pt", weights_only=False)["step"] == 1


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    from test_losses import random_vgg19_state_dict

    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save({k: v for k, v in random_vgg19_state_dict().items() if k.startswith("features.")
                and int(k.split(".")[1]) < 15}, path)
    return path


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_trains_through_the_cli(preset: str, gopro: Path, vgg_file: Path, tmp_path: Path) -> None:
    args = ["--config", preset, "--steps", "2", "--out", str(tmp_path), "--device", "cpu"]
    for s in tiny_sets(preset, gopro) + [f"loss.vgg_weights='{vgg_file}'"]:
        args += ["--set", s]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "stopped at step 2: val_psnr" in result.output
    info_step = torch.load(tmp_path / "last.train.pt", weights_only=False)["step"]
    assert info_step == 2 and (tmp_path / "last.safetensors").is_file()


def test_cli_errors_are_one_line(gopro: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--config", "deblurgan", "--out", str(tmp_path), "--device", "cpu",
                                  *sum((["--set", s] for s in tiny_sets("deblurgan", gopro)), [])])
    assert result.exit_code == 1
    assert "set loss.vgg_weights to a torchvision vgg19 state dict" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(main, ["--config", "rir", "--set", "train.crop=30", "--set", "model.overrides={channels = 8}",
                                  "--out", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 1 and "train.crop = 30 is not a multiple of 4, which rir needs" in result.output
    result = runner.invoke(main, ["--list-presets"])
    assert result.exit_code == 0 and result.output.split() == list_presets()


def test_cpu_limit_counts_training_cpu_across_resumes(gopro: Path, tmp_path: Path) -> None:
    cfg = load_config("rir", tiny_sets("rir", gopro) + ["train.steps=50"])
    first = Trainer(cfg, tmp_path, CPU)
    first.run(cpu_limit_s=1e-9)  # any step spends more than this: one step, then a checkpoint
    assert first.step == 1 and first.train_cpu_s > 0
    saved = torch.load(tmp_path / "last.train.pt", weights_only=False)["train_cpu_s"]
    assert saved == first.train_cpu_s
    resumed = Trainer(cfg, tmp_path, CPU, resume=True)
    assert resumed.train_cpu_s == saved
    resumed.run(cpu_limit_s=saved)  # the budget is already spent: the resumed run stops after one step
    assert resumed.step == 2 and resumed.train_cpu_s > saved
    with (tmp_path / "log.csv").open() as f:
        cpu = [float(r["cpu_s"]) for r in csv.DictReader(f)]
    assert len(cpu) == 2 and cpu[1] > cpu[0] > 0


def test_init_from_takes_weights_not_optimiser_and_refuses_another_model(gopro: Path, tmp_path: Path) -> None:
    base = tiny_sets("vdeblur_deep", gopro) + ["train.steps=3"]
    source = Trainer(load_config("vdeblur_deep", base + ["optim.lr_g=3e-3"]), tmp_path / "a", CPU)
    source.run()
    # Another batch size and learning rate (what a GPU stage changes) are fine: only the model must match.
    warm = Trainer(load_config("vdeblur_deep", base + ["train.batch=1", "optim.lr_g=1e-4"]), tmp_path / "b", CPU,
                   init_from=tmp_path / "a")
    assert warm.step == 0 and not warm.opt_g.state_dict()["state"]
    for (k, p), q in zip(warm.g.state_dict().items(), source.g.state_dict().values()):
        assert torch.equal(p, q), k
    for p, q in zip(warm.ema.module.parameters(), source.ema.module.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ConfigError, match="--init-from: .* trained vdeblur_deep .*, not vdeblur_deep"):
        Trainer(load_config("vdeblur_deep", base + ["model.overrides={channels = [8, 8, 8, 8], feedback = 0}"]),
                tmp_path / "c", CPU, init_from=tmp_path / "a")
    with pytest.raises(ConfigError, match="--init-from: .*nowhere.* does not exist"):
        Trainer(load_config("vdeblur_deep", base), tmp_path / "d", CPU, init_from=tmp_path / "nowhere")
    result = CliRunner().invoke(main, ["--config", "rir", "--resume", "--init-from", str(tmp_path / "a"),
                                       "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and "give one of them" in result.output


def test_init_from_grows_a_smaller_model_into_one_that_computes_the_same(gopro: Path, tmp_path: Path) -> None:
    small = "{channels = [8, 8, 8, 8], enc_blocks = [0, 1, 1, 1], dec_blocks = [0, 1, 0], lstm_hidden = 8, feedback = 4}"
    big = "{channels = [8, 8, 8, 8], enc_blocks = [1, 1, 3, 2], dec_blocks = [1, 1, 2], lstm_hidden = 8, feedback = 4}"
    base = tiny_sets("vdeblur_deep", gopro) + ["train.steps=3"]
    source = Trainer(load_config("vdeblur_deep", base + ["optim.lr_g=3e-3"]), tmp_path / "a", CPU)
    source.run()
    grown = Trainer(load_config("vdeblur_deep", base + [f"model.overrides={big}"]), tmp_path / "b", CPU,
                    init_from=tmp_path / "a")
    assert grown.step == 0
    small_model, big_model = source.ema.module.eval(), grown.ema.module.eval()
    assert sum(p.numel() for p in big_model.parameters()) > sum(p.numel() for p in small_model.parameters())
    for k, v in small_model.state_dict().items():  # every trained weight is carried, in the raw weights too
        assert torch.equal(big_model.state_dict()[k], v) and torch.equal(grown.g.state_dict()[k], v), k
    frame = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    a_state, b_state = small_model.initial_state(1, 32, 48), big_model.initial_state(1, 32, 48)
    with torch.no_grad():
        for _ in range(3):
            a, a_state = small_model(frame, a_state)
            b, b_state = big_model(frame, b_state)
            assert torch.allclose(a, b, atol=1e-6) and not torch.equal(a, frame)
    grown.run()  # and it trains: the new blocks leave zero
    new_block = grown.ema.module.enc3[2].body[2].weight
    assert new_block.abs().sum() > 0
    # Another width or state is no growth: refused, naming both models.
    with pytest.raises(ConfigError, match=r"cannot seed it: vdeblur_deep can grow only by residual blocks"):
        Trainer(load_config("vdeblur_deep", base + ["model.overrides={channels = [8, 8, 16, 8]}"]), tmp_path / "c",
                CPU, init_from=tmp_path / "a")


def test_packed_run_resumes_on_its_own_with_the_same_config(gopro: Path, tmp_path: Path) -> None:
    from vdeblur.train.config import to_toml
    from vdeblur.train.pack import pack_run

    sets = tiny_sets("vdeblur_deep", gopro) + ["train.steps=4", 'optim.betas=[0.9, 0.9]', "loss.fft_weight=0.1"]
    cfg = load_config("vdeblur_deep", sets)
    assert load_config_from_text(to_toml(cfg), tmp_path) == cfg
    run = Trainer(cfg, tmp_path / "run", CPU)
    run.run(until=2)
    files = pack_run(tmp_path / "run", tmp_path / "packed")
    assert {f.name for f in files} == {"last.safetensors", "log.csv", "last.train.pt", "run.toml"}
    packed = torch.load(tmp_path / "packed" / "last.train.pt", weights_only=False)
    assert packed["packed"] and not {"generator", "opt_g"} & set(packed) and packed["step"] == 2
    assert (tmp_path / "packed" / "last.train.pt").stat().st_size < 0.1 * (tmp_path / "run" / "last.train.pt").stat().st_size
    # A fresh process elsewhere: only the packed folder and its run.toml.
    resumed = Trainer(load_config(tmp_path / "packed" / "run.toml"), tmp_path / "packed", CPU, resume=True)
    assert resumed.step == 2 and resumed.train_cpu_s == run.train_cpu_s
    assert resumed.schedulers[0].get_last_lr() == run.schedulers[0].get_last_lr()
    for p, q in zip(resumed.g.parameters(), run.ema.module.parameters()):
        assert torch.equal(p, q)  # raw weights restart from the EMA copy
    resumed.run()
    assert resumed.step == 4
    # --init-from a packed state: the EMA seeds both copies.
    pack_run(tmp_path / "run", tmp_path / "packed2")
    warm = Trainer(cfg, tmp_path / "warm", CPU, init_from=tmp_path / "packed2")
    assert all(torch.equal(p, q) for p, q in zip(warm.g.parameters(), run.ema.module.parameters()))
    with pytest.raises(ValueError, match="not into itself"):
        pack_run(tmp_path / "packed", tmp_path / "packed")


def test_pack_links_an_ema_identical_to_the_bundled_weights(gopro: Path, tmp_path: Path) -> None:
    import shutil

    from vdeblur.train.pack import pack_run

    cfg = load_config("vdeblur_deep", tiny_sets("vdeblur_deep", gopro) + ["train.steps=1"])
    Trainer(cfg, tmp_path / "run", CPU).run()
    bundled = tmp_path / "repo" / "models" / "m.safetensors"
    bundled.parent.mkdir(parents=True)
    shutil.copyfile(tmp_path / "run" / "last.safetensors", bundled)
    pack_run(tmp_path / "run", tmp_path / "repo" / "state", link_to=bundled)
    link = tmp_path / "repo" / "state" / "last.safetensors"
    assert link.is_symlink() and str(link.readlink()) == "../models/m.safetensors"
    assert Trainer(cfg, tmp_path / "repo" / "state", CPU, resume=True).step == 1
    bundled.write_bytes(b"other weights")  # no longer identical: a real copy is written
    pack_run(tmp_path / "run", tmp_path / "repo" / "state", link_to=bundled)
    assert not link.is_symlink() and link.stat().st_size > 1000


def load_config_from_text(text: str, folder: Path) -> Config:
    path = folder / "cfg.toml"
    path.write_text(text)
    return load_config(path)


def test_bf16_and_channels_last_train_on_cpu_with_the_fp32_gradient(gopro: Path, tmp_path: Path) -> None:
    # train.amp = bf16 runs the forward in CPU autocast (2.3x cheaper steps on an AVX512-BF16 CPU:
    # benchmarks/train_speed.py); channels_last keeps weights NHWC. The gradient must stay the FP32 one.
    base = tiny_sets("vdeblur_deep", gopro) + ["optim.lr_g=3e-3", "optim.schedule=constant"]
    fp32 = Trainer(load_config("vdeblur_deep", base), tmp_path / "fp32", CPU)
    fast = Trainer(load_config("vdeblur_deep", base + ["train.amp=bf16", "train.channels_last=true"]), tmp_path / "bf16", CPU)
    conv = next(m for m in fast.g.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    ema_conv = next(m for m in fast.ema.module.modules() if isinstance(m, torch.nn.Conv2d))
    assert ema_conv.weight.is_contiguous(memory_format=torch.channels_last)
    with fast.autocast():
        assert conv(torch.rand(1, conv.in_channels, 8, 8)).dtype == torch.bfloat16
    batch = next(fp32.batches())
    fast.g.load_state_dict(fp32.g.state_dict())
    torch.nn.init.normal_(fp32.g.head[0].weight, std=0.01)  # a non-zero head, so every layer has a gradient
    fast.g.head[0].weight.data.copy_(fp32.g.head[0].weight)
    grads = []
    for trainer in (fp32, fast):
        trainer.g.zero_grad()
        with trainer.autocast():
            fake = trainer.unroll(trainer.g, batch["blurred"])
        trainer.content(fake.float(), batch["sharp"].flatten(0, 1)).backward()
        grads.append(torch.cat([p.grad.flatten() for p in trainer.g.parameters()]))
    cos = float(grads[0] @ grads[1] / (grads[0].norm() * grads[1].norm()))
    assert cos > 0.99, cos
    losses = [fast.train_step(batch)["content"] for _ in range(40)]
    assert losses[-1] < 0.7 * losses[0], losses[::10]


def test_precision_and_layout_may_change_on_resume_but_fp16_needs_cuda(gopro: Path, tmp_path: Path) -> None:
    sets = tiny_sets("vdeblur_deep", gopro) + ["train.steps=2"]
    Trainer(load_config("vdeblur_deep", sets), tmp_path / "run", CPU).run()
    resumed = Trainer(load_config("vdeblur_deep", sets + ["train.steps=4", "train.amp=bf16", "train.channels_last=true"]),
                      tmp_path / "run", CPU, resume=True)
    assert resumed.step == 2 and resumed.amp is torch.bfloat16
    resumed.run()
    assert resumed.step == 4
    with pytest.raises(ConfigError, match="train.amp = fp16 needs CUDA, and this run is on cpu: use bf16 or off"):
        Trainer(load_config("vdeblur_deep", sets + ["train.amp=fp16"]), tmp_path / "fp16", CPU)
    with pytest.raises(ConfigError, match="data.min_detail must be >= 0"):
        load_config("vdeblur_deep", ["data.min_detail=-1"])
    with pytest.raises(ConfigError, match="the device renderer .* does not skip flat crops"):
        load_config("vdeblur_deep", ["data.kind=device", "data.min_detail=2"])


def test_data_keys_describe_the_synthetic_degradation_and_are_checked(photo: np.ndarray, tmp_path: Path) -> None:
    from vdeblur.train.run_state import build_datasets, data_shake

    assert data_shake(Config()) == ShakeConfig()  # a config that predates the keys renders as before
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), photo)
    cfg = load_config("vdeblur_deep", [f"data.sources=['{folder}', '{folder}', 'deadleaves:2']", "data.val_sources=[]",
                                       "data.blur_px=[3, 20]",
                                       "data.noise=none", "data.compression=none", "data.val_sequences=2",
                                       "data.val_size=32"])
    train, val, fit = build_datasets(cfg, window=2)
    assert train.config.blur_px == (3.0, 20.0) and train.config.noise is None and train.config.compression.kind == "none"
    assert train.sources[0] is train.sources[1]  # one folder opened once: one decoded-photo cache
    assert len(val) == len(fit) == 2 and not torch.equal(val[0]["sharp"], fit[0]["sharp"])
    for key, value, message in (("data.noise", "loud", "data.noise = 'loud' is not allowed"),
                                ("data.compression", "zip", "data.compression = 'zip' is not allowed"),
                                ("data.blur_px", "[5, 2]", "data.blur_px must be a range"),
                                ("data.h264_crf", "[18, 60]", "data.h264_crf a range within 0..51")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config("vdeblur_deep", [f"{key}={value}"])


def test_validation_logs_the_fit_gain_beside_the_held_out_gain(gopro: Path, tmp_path: Path) -> None:
    trainer = Trainer(load_config("rir", tiny_sets("rir", gopro) + ["train.steps=2", "train.val_every=1"]), tmp_path, CPU)
    metrics = trainer.run()
    assert set(metrics) == {"val_psnr", "val_ssim", "val_input_psnr", "val_input_ssim", "fit_psnr", "fit_input_psnr"}
    with (tmp_path / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["fit_psnr"] and rows[-1]["fit_input_psnr"] and rows[-1]["val_psnr"]


def test_a_log_written_before_new_columns_is_upgraded_in_place(tmp_path: Path) -> None:
    from vdeblur.train.run_state import LOG_COLUMNS, RunLog

    old = LOG_COLUMNS[:-2]
    (tmp_path / "log.csv").write_text(",".join(old) + "\n" + "1,2.0" + "," * (len(old) - 2) + "\n")
    RunLog(tmp_path, enabled=True).write(2, 10, 1.0, 1e-3, {"content": 0.5, "fit_psnr": 30.0})
    with (tmp_path / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(LOG_COLUMNS)
    assert (rows[0]["step"], rows[0]["it_per_s"], rows[0]["fit_psnr"]) == ("1", "2.0", "")
    assert (rows[1]["step"], rows[1]["content"], rows[1]["fit_psnr"]) == ("2", "0.5", "30")


def test_aligned_previous_frame_trains_on_clips_with_moving_objects(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """vdeblur_deep with the previous frame aligned by the estimated motion, on synthetic windows whose
    clips carry 1-2 objects moving on their own: the batch holds their masks, the steps train."""
    sets = ["model.overrides={channels = [8, 8, 16, 16], enc_blocks = [0, 1, 1, 1], dec_blocks = [0, 1, 1], "
            "lstm_hidden = 8, feedback = 4, aligned_previous = true}", "data.kind=synthetic", "data.sources=['skimage']",
            "data.val_sources=['skimage']", "data.objects=[1, 2]", "data.blur_px=[3, 6]", "data.length=4",
            "data.val_size=48", "data.val_sequences=1",
            "data.val_frames=2", "train.batch=2", "train.crop=48", "train.window=3", "train.steps=2",
            "train.val_every=2", "train.log_every=1", "optim.warmup_steps=0"]
    trainer = Trainer(load_config("vdeblur_deep", sets), tmp_path, CPU)
    batch = next(trainer.batches())
    assert batch["moving"].shape == (2, 3, 48, 48) and batch["moving"].any()
    metrics = trainer.run()
    assert trainer.step == 2 and np.isfinite(metrics["val_psnr"])
    with pytest.raises(ConfigError, match="moving objects need data.kind = 'synthetic'"):
        load_config("vdeblur_deep", ["data.kind=device", "data.objects=[1, 2]"])
    # Near layers alone (parallax) give masks the same way.
    layered = Trainer(load_config("vdeblur_deep", sets + ["data.objects=[0, 0]", "data.parallax=[1, 1]"]), tmp_path / "near", CPU)
    assert next(layered.batches())["moving"].any()
    with pytest.raises(ConfigError, match="near layers need data.kind = 'synthetic'"):
        load_config("vdeblur_deep", ["data.kind=device", "data.parallax=[0, 1]"])
    # Alignment faults: the same run trains with every previous frame missing, shifted or cut.
    faulted = Trainer(load_config("vdeblur_deep", sets + ["train.alignment_faults=1.0"]), tmp_path / "faults", CPU)
    assert faulted.step == 0 and np.isfinite(faulted.run()["val_psnr"])
    with pytest.raises(ConfigError, match="alignment_faults must be a share"):
        load_config("vdeblur_deep", ["train.alignment_faults=1.5"])
    with pytest.raises(ConfigError, match="alignment_faults needs a model that takes its previous frame aligned"):
        Trainer(load_config("vdeblur_fast", ["train.alignment_faults=0.2"]), tmp_path / "fast", CPU)
    # The aligned frame at stride 4 only, warm-started from the first run: its full-resolution conv is
    # dropped, and the start says so instead of claiming the same function.
    s4_sets = [sets[0].replace("aligned_previous = true}", "aligned_previous = true, aligned_first_conv = false}"),
               *sets[1:]]
    capsys.readouterr()
    s4 = Trainer(load_config("vdeblur_deep", s4_sets), tmp_path / "s4", CPU, init_from=tmp_path)
    assert "seeds a model without previous_in.bias, previous_in.weight" in capsys.readouterr().out
    carried = trainer.ema.module.state_dict()["previous_inject.weight"]
    assert torch.equal(s4.g.state_dict()["previous_inject.weight"], carried) and not hasattr(s4.g, "previous_in")
