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
