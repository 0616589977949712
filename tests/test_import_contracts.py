"""The import contracts (``[tool.importlinter]`` in pyproject.toml): core imports no wing, nothing imports the CLI,
the components and the dev stack never import each other."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs lint-imports in a subprocess

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("eventpulse", "devstack", "cli", "gateway", "flows", "orchestration", "dashboards")


def _lint(cwd: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache"],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_repository_keeps_its_import_contracts():
    result = _lint(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_contracts(tmp_path):
    """Negative control: the same contracts over a tree where the core imports a wing and a wing imports
    another must fail, naming both imports."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "eventpulse" / "keys.py").write_text("import gateway.auth\n")
    (tmp_path / "gateway" / "auth.py").write_text("")
    (tmp_path / "dashboards" / "page.py").write_text("from orchestration import jobs\n")
    (tmp_path / "orchestration" / "jobs.py").write_text("")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert config["root_packages"] == list(PACKAGES)
    result = _lint(tmp_path, tmp_path / "pyproject.toml")
    assert result.returncode != 0
    assert "eventpulse.keys -> gateway.auth" in result.stdout
    assert "dashboards.page -> orchestration.jobs" in result.stdout
    assert "2 broken" in result.stdout
