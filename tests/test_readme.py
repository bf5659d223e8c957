"""The README's two opening commands are what users and CI run; keep them honest."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)[:2]


def test_ci_runs_the_readme_test_command() -> None:
    main_job, test_cmd = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd.strip() in ci
    assert "pytest" in test_cmd and "vdeblur" in main_job


def test_readme_never_installs_an_unpinned_torch_first() -> None:
    # An unpinned torch on a fresh machine pulls a multi-GB CUDA build; both commands pin the local CPU one.
    for cmd in _readme_commands():
        assert cmd.startswith("pip install torch==")


def test_models_snippet_runs_the_bundled_trained_weights() -> None:
    import torch

    (snippet,) = [block for block in re.findall(r"```python\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
                  if "run_padded" in block]
    torch.manual_seed(0)
    frame = torch.rand(1, 3, 720, 1280)
    scope = {"frame": frame}
    exec(snippet, scope)  # noqa: S102 (the README's own code)
    out, state = scope["out"], scope["state"]
    assert out.shape == frame.shape and len(state) == len(scope["model"].state_slots)
    # Untrained weights return the input unchanged through the global residual; trained ones do not.
    assert (out - frame).abs().max() > 1e-3
