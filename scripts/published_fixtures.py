"""Make the parity fixtures of the published architectures from their authors' own code.

    python scripts/published_fixtures.py --nafnet DIR --deblurganv2 DIR --pretrainedmodels DIR [--deps DIR]
                                         [--out tests/fixtures/published]

DIR is a checkout of the authors' public repository (github.com/megvii-research/NAFNet,
github.com/VITA-Group/DeblurGANv2), kept outside this repository; --pretrainedmodels is the package
folder of the ``pretrainedmodels`` sdist (0.7.4), whose Inception-ResNet-v2 DeblurGAN-v2 builds on
(its architecture only: ImageNet weights are never fetched); --deps is an extra import path for the
packages their inference path needs and vdeblur does not (albumentations for DeblurGAN-v2's
normalisation). Nothing of theirs is copied into vdeblur: their modules are imported from DIR, and
packages they import only for other models or for training (torchvision, torchsummary, fire,
BasicSR's logger) are replaced by empty stand-ins.

For each architecture this builds the authors' network at a reduced width with random weights
(seeded; drawn from a coarse grid, and 99 % zero in the 54 M-weight Inception backbone, so the files
compress to 0.2-2 MB), saves it in the authors' checkpoint format (BasicSR ``{'params': ...}`` .pth;
DeblurGAN-v2 ``{'model': ...}`` of an ``nn.DataParallel``, ``.h5``), xz-compressed, and records what
the authors' whole inference path returns on fixed inputs: their image reading and normalisation,
padding, forward (DeblurGAN-v2 in train mode), clamp and 8-bit conversion. It also writes the
parameter names and shapes of every released configuration (``manifests/``).
``tests/test_published_models.py`` and ``tests/test_published_engine.py`` check our reader,
architectures and engine against these records.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import lzma
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage import data as skdata
from torch import nn

SEED = 0
NAFNET_ARGS = {"img_channel": 3, "width": 8, "middle_blk_num": 1, "enc_blk_nums": [1, 1, 1, 2], "dec_blk_nums": [1, 1, 1, 1]}
NAFNET_TLC_TRAIN = (1, 3, 64, 64)  # a small training crop, so the local attention windows act on a 100x120 image
MOBILENET_ARGS = {"num_filters": 16, "num_filters_fpn": 32}
INCEPTION_ARGS = {"num_filters": 16, "num_filters_fpn": 32}
INCEPTION_DENSITY = 0.01  # Inception-ResNet-v2 has 54 M weights whatever the head width: stored 99 % zeros


class _Stub(types.ModuleType):
    """An import the authors' files make for code the fixtures never run."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub(f"{self.__name__}.{name}")

    def __call__(self, *args: object, **kwargs: object) -> object:
        raise RuntimeError(f"{self.__name__} is a stand-in and cannot run")


def _stub(*names: str) -> None:
    for name in names:
        sys.modules.setdefault(name, _Stub(name))


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _commit(repo: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def randomise(model: nn.Module, seed: int, density: float = 1.0) -> None:
    """Random weights on a coarse grid (k/8 of a fan-in scale, k in -8..8): a working network whose
    file compresses well. Normalisation scales stay near 1 so activations keep their size.
    ``density`` < 1 zeroes that share of the conv weights (for backbones too large to store dense)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            k = torch.randint(-8, 9, t.shape, generator=g).float() / 8
            if name.endswith("running_var"):
                t.copy_(1 + k.abs() / 2)
            elif name.endswith(("beta", "gamma")) or t.dim() == 1 and not name.endswith("weight"):
                t.copy_(k / 4)  # biases, running means and NAFNet's residual scales
            elif t.dim() == 1:
                t.copy_(1 + k / 4)  # normalisation scales
            else:  # conv weights, scaled by fan-in
                w = k * (1.5 / (t[0].numel() * density)) ** 0.5
                if density < 1:  # dropped ones +0.0 (a -0.0 would cost a sign bit each in the compressed file)
                    w = torch.where(torch.rand(t.shape, generator=g) < density, w, torch.zeros(()))
                t.copy_(w)


def write_xz(path: Path, save: object) -> None:
    tmp = path.with_suffix("")
    torch.save(save, tmp)
    path.write_bytes(lzma.compress(tmp.read_bytes(), preset=9))
    tmp.unlink()


def test_image(h: int, w: int, at: tuple[int, int] = (120, 160)) -> np.ndarray:
    """A fixed RGB uint8 crop of scikit-image's astronaut photograph (real image statistics)."""
    y, x = at
    return np.ascontiguousarray(skdata.astronaut()[y:y + h, x:x + w])


def clip_frames(h: int, w: int, n: int = 3) -> np.ndarray:
    """(n, h, w, 3): a short pan across the photograph, for the video test."""
    return np.stack([test_image(h, w, (200 + 3 * i, 180 + 5 * i)) for i in range(n)])


def nafnet_fixtures(repo: Path, out: Path) -> dict:
    _stub("torchvision", "torchvision.utils", "basicsr.utils", "basicsr.utils.logger")
    sys.modules["basicsr.utils"].get_root_logger = lambda *a, **k: None  # type: ignore[attr-defined]
    for pkg in ("basicsr", "basicsr.models", "basicsr.models.archs"):
        sys.modules.setdefault(pkg, types.ModuleType(pkg))
    archs = repo / "basicsr" / "models" / "archs"
    _load("basicsr.models.archs.arch_util", archs / "arch_util.py")
    _load("basicsr.models.archs.local_arch", archs / "local_arch.py")
    authors = _load("basicsr.models.archs.NAFNet_arch", archs / "NAFNet_arch.py")
    img_util = _load("nafnet_img_util", repo / "basicsr" / "utils" / "img_util.py")

    torch.manual_seed(SEED)
    net = authors.NAFNet(**NAFNET_ARGS)
    randomise(net, SEED)
    state = net.state_dict()
    # BasicSR's save_network: {'params': state dict without 'module.'}
    write_xz(out / "nafnet-width8.pth.xz", {"params": state})

    def infer(model: nn.Module, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # basicsr/demo.py: imfrombytes(float32) -> img2tensor(bgr2rgb) -> model.test() -> tensor2img.
        ok, png = cv2.imencode(".png", rgb[..., ::-1])
        img = img_util.imfrombytes(png.tobytes(), float32=True)
        lq = img_util.img2tensor(img, bgr2rgb=True, float32=True).unsqueeze(0)
        model.eval()
        with torch.no_grad():
            pred = model(lq)
        as_uint8 = img_util.tensor2img([pred])[..., ::-1]  # BGR -> RGB
        return pred[0].permute(1, 2, 0).numpy(), np.ascontiguousarray(as_uint8)

    local_small = authors.NAFNetLocal(**NAFNET_ARGS, train_size=NAFNET_TLC_TRAIN)
    local_small.load_state_dict(state)
    local_released = authors.NAFNetLocal(**NAFNET_ARGS)  # the released configs' class and training crop
    local_released.load_state_dict(state)
    image = test_image(100, 120)  # not a multiple of 16: exercises the zero padding
    frames = clip_frames(48, 72)
    records = {"image": image, "frames": frames}
    records["nafnet"], _ = infer(net, image)
    records["nafnet_local_train64"], _ = infer(local_small, image)
    records["frames_out"] = np.stack([infer(local_released, f)[1] for f in frames])
    np.savez_compressed(out / "nafnet-width8.npz", **records)
    return {"repository": "https://github.com/megvii-research/NAFNet", "commit": _commit(repo),
            "checkpoint": "nafnet-width8.pth.xz", "records": "nafnet-width8.npz", "constructor": NAFNET_ARGS,
            "nafnet_local_train64": {"class": "NAFNetLocal", "train_size": NAFNET_TLC_TRAIN},
            "frames_out": {"class": "NAFNetLocal", "train_size": "default (1, 3, 256, 256)",
                           "path": "imfrombytes -> img2tensor -> forward -> tensor2img (clamp, round)"}}


def _pretrainedmodels(package: Path) -> None:
    """The authors import ``inceptionresnetv2`` from ``pretrainedmodels`` and ask it for ImageNet
    weights; the fixtures take its architecture alone (never its weights: nothing is downloaded)."""
    module = _load("pretrainedmodels_inceptionresnetv2", package / "models" / "inceptionresnetv2.py")
    sys.modules["pretrainedmodels"] = types.ModuleType("pretrainedmodels")
    sys.modules["pretrainedmodels"].inceptionresnetv2 = (  # type: ignore[attr-defined]
        lambda num_classes=1000, pretrained=None: module.InceptionResNetV2(num_classes=num_classes))


def deblurganv2_fixtures(repo: Path, out: Path) -> dict:
    _stub("torchsummary", "torchvision", "torchvision.models", "fire")
    sys.path.insert(0, str(repo))
    networks = importlib.import_module("models.networks")
    predict = importlib.import_module("predict")
    fpn_mobilenet = importlib.import_module("models.fpn_mobilenet")

    torch.manual_seed(SEED)
    net = fpn_mobilenet.FPNMobileNet(norm_layer=networks.get_norm_layer("instance"), pretrained=False, **MOBILENET_ARGS)
    randomise(net, SEED + 1)
    sizes = {"odd": (70, 90), "multiple": (64, 96), "frames": (48, 72)}
    record_predictor(predict, net, out / "fpn_mobilenet-width16", sizes)
    fpn_inception = importlib.import_module("models.fpn_inception")
    torch.manual_seed(SEED)
    net = fpn_inception.FPNInception(norm_layer=networks.get_norm_layer("instance"), **INCEPTION_ARGS)
    randomise(net, SEED + 2, INCEPTION_DENSITY)
    # Its valid convolutions need 2 px at stride 32 for the pyramid's reflection pads: frames of >= 96 px.
    sizes = {"odd": (100, 130), "multiple": (128, 96), "frames": (96, 112)}
    record_predictor(predict, net, out / "fpn_inception-width16", sizes)
    return {"repository": "https://github.com/VITA-Group/DeblurGANv2", "commit": _commit(repo),
            "fpn_mobilenet": {"checkpoint": "fpn_mobilenet-width16.h5.xz", "records": "fpn_mobilenet-width16.npz",
                              "constructor": {"class": "FPNMobileNet", "norm_layer": "get_norm_layer('instance')",
                                              **MOBILENET_ARGS}},
            "fpn_inception": {"checkpoint": "fpn_inception-width16.h5.xz", "records": "fpn_inception-width16.npz",
                              "constructor": {"class": "FPNInception", "norm_layer": "get_norm_layer('instance')",
                                              **INCEPTION_ARGS},
                              "backbone": "pretrainedmodels' InceptionResNetV2, no pretrained weights",
                              "conv_weight_density": INCEPTION_DENSITY},
            "path": "predict.Predictor: normalize -> pad to (h // 32 + 1) * 32 -> train-mode forward -> uint8"}


def record_predictor(predict: types.ModuleType, net: nn.Module, stem: Path, sizes: dict[str, tuple[int, int]]) -> None:
    """Save ``net`` as the authors do (``{'model': ...}`` of ``nn.DataParallel``, ``stem.h5.xz``) and
    record their ``Predictor`` on fixed images (``stem.npz``)."""
    model = nn.DataParallel(net)  # get_generator wraps every generator: the file's names start with 'module.'
    write_xz(stem.parent / f"{stem.name}.h5.xz", {"model": model.state_dict()})

    # predict.Predictor without its __init__, which reads config/config.yaml and moves to CUDA; the
    # rest of its path (normalise, pad, train-mode forward, uint8) is theirs. .cuda() is the identity here.
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    predictor = predict.Predictor.__new__(predict.Predictor)
    predictor.model = model
    predictor.model.train(True)
    predictor.normalize_fn = predict.get_normalize()
    floats: list[np.ndarray] = []
    forward = model.forward

    def recording(*inputs: torch.Tensor) -> torch.Tensor:
        pred = forward(*inputs)
        floats.append(((pred[0].detach().permute(1, 2, 0) + 1) / 2).numpy())  # before their uint8 conversion
        return pred

    model.forward = recording  # type: ignore[method-assign]
    records: dict[str, np.ndarray] = {}
    for name in ("odd", "multiple"):
        image = test_image(*sizes[name])
        as_uint8 = predictor(image, None)
        h, w = image.shape[:2]
        records[f"image_{name}"], records[f"out_{name}"] = image, floats.pop()[:h, :w]
        records[f"out_{name}_uint8"] = as_uint8
    frames = clip_frames(*sizes["frames"])
    records["frames"] = frames
    records["frames_out"] = np.stack([predictor(f, None) for f in frames])
    np.savez_compressed(stem.parent / f"{stem.name}.npz", **records)


# The released files and the constructor arguments of their configurations (NAFNet:
# options/test/{GoPro,REDS}/NAFNet-width*.yml; DeblurGAN-v2: config/config.yaml, g_name fpn_mobilenet / fpn_inception).
RELEASED_NAFNET = {"NAFNet-GoPro-width32.pth": 32, "NAFNet-GoPro-width64.pth": 64, "NAFNet-REDS-width64.pth": 64}


def write_manifest(path: Path, model: nn.Module, header: str) -> None:
    """Names and shapes of ``model.state_dict()``, one a line; no values."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{name}\t{'x'.join(map(str, t.shape))}" for name, t in model.state_dict().items()]
    path.write_text("\n".join(lines) + "\n")


def manifests(nafnet_repo: Path, dgv2_repo: Path, out: Path) -> None:
    """Full-size layouts of the released files, built from the authors' code on the meta device (no
    weights). NAFNetLocal has NAFNet's parameters (its pooling has none), so NAFNet is built."""
    authors = sys.modules["basicsr.models.archs.NAFNet_arch"]
    folder = out / "manifests"
    folder.mkdir(exist_ok=True)
    for name, width in RELEASED_NAFNET.items():
        with torch.device("meta"):
            net = authors.NAFNet(img_channel=3, width=width, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 28],
                                 dec_blk_nums=[1, 1, 1, 1])
        write_manifest(folder / f"{name}.txt", net, f"{name}: parameter names and shapes of the released file, as "
                       f"BasicSR saves it ({{'params': state dict}}, no 'module.')\nderived from the authors' NAFNet "
                       f"(width {width}, enc [1, 1, 1, 28], middle 1, dec [1, 1, 1, 1]) at {_commit(nafnet_repo)}")
    networks, fpn_mobilenet = sys.modules["models.networks"], sys.modules["models.fpn_mobilenet"]
    with torch.device("meta"):
        # What get_generator builds for g_name fpn_mobilenet, minus the ImageNet backbone download.
        gen = nn.DataParallel(fpn_mobilenet.FPNMobileNet(norm_layer=networks.get_norm_layer("instance"), pretrained=False))
    write_manifest(folder / "fpn_mobilenet.h5.txt", gen, "fpn_mobilenet.h5: parameter names and shapes of the released "
                   "file ({'model': state dict} of nn.DataParallel)\nderived from the authors' FPNMobileNet with "
                   f"get_generator's arguments (norm_layer instance, defaults) at {_commit(dgv2_repo)}")
    fpn_inception = sys.modules["models.fpn_inception"]
    with torch.device("meta"):
        gen = nn.DataParallel(fpn_inception.FPNInception(norm_layer=networks.get_norm_layer("instance")))
    write_manifest(folder / "fpn_inception.h5.txt", gen, "fpn_inception.h5: parameter names and shapes of the released "
                   "file ({'model': state dict} of nn.DataParallel)\nderived from the authors' FPNInception with "
                   f"get_generator's arguments (norm_layer instance, defaults) at {_commit(dgv2_repo)}, with "
                   "pretrainedmodels' InceptionResNetV2 (0.7.4) as its backbone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nafnet", type=Path, required=True, help="checkout of megvii-research/NAFNet")
    parser.add_argument("--deblurganv2", type=Path, required=True, help="checkout of VITA-Group/DeblurGANv2")
    parser.add_argument("--pretrainedmodels", type=Path, required=True,
                        help="the pretrainedmodels package folder (from its PyPI sdist), for Inception-ResNet-v2")
    parser.add_argument("--deps", type=Path, default=None, help="extra import path (albumentations, fire)")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/published"))
    args = parser.parse_args()
    if args.deps:
        sys.path.append(str(args.deps))  # after site-packages: vdeblur's numpy/torch stay the ones used
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    _pretrainedmodels(args.pretrainedmodels)
    record = {"torch": torch.__version__, "seed": SEED, "command": " ".join(["python", *sys.argv]),
              "nafnet": nafnet_fixtures(args.nafnet, args.out),
              "deblurgan_v2": deblurganv2_fixtures(args.deblurganv2, args.out)}
    manifests(args.nafnet, args.deblurganv2, args.out)
    (args.out / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    for f in sorted(args.out.rglob("*.*")):
        print(f"{f}: {f.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
