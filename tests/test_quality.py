"""The code's own quality gates, run with the suite: lint, format, types."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "hub", "common")


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_ruff_lint_is_clean() -> None:
    """ruff finds nothing to complain about."""
    result = _run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    """Every file is formatted the way ruff formats it."""
    result = _run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."], REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(300)
def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    """The three packages type-check under mypy --strict with their real import names."""
    package = tmp_path / "gsmon"
    package.mkdir()
    for name in PACKAGES:
        (package / name).symlink_to(REPO / name, target_is_directory=True)
    env = dict(os.environ, MYPYPATH=str(tmp_path))
    result = _run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "-p",
            "gsmon",
        ],
        tmp_path,
        env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
