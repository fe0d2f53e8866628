"""Shared test fixtures: paths to the repository and to the MIG-Bench parity data it carries (tests/fixtures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: Public MIG-Bench files, two models' published result files and two real photos (see its README.md).
PARITY = FIXTURES / "mig-bench"


@pytest.fixture
def parity_dir() -> Path:
    return PARITY


def run_mirg(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `mirg` command in a fresh process and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mirg", *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout
    )


@pytest.fixture
def mirg():
    return run_mirg
