"""The house style holds: ruff's lint rules and formatter (pyproject.toml's [tool.ruff]) pass on every package."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["actors", "cluster", "configs", "vision", "learner", "reward", "lab", "benchmarks", "tests"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(command):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, *PACKAGES], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, (
        f"ruff {' '.join(command)} (fix: ruff {' '.join(command[:1])}):\n{result.stdout}"
    )
