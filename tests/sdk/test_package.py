"""The SDK as a package of its own: typed (mypy --strict), depending on httpx only, importing
nothing of the server, installed into the project's virtualenv by `make install`."""

import ast
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import eventpulse_sdk
import pytest

SDK = Path(__file__).resolve().parents[2] / "sdk" / "python"
SERVER_PACKAGES = {"eventpulse", "devstack", "cli", "gateway", "flows", "orchestration", "dashboards"}


def test_distribution_metadata() -> None:
    dist = metadata.distribution("eventpulse-sdk")
    assert dist.version == eventpulse_sdk.__version__
    assert [r.split(">")[0].split("<")[0].strip() for r in dist.requires or []] == ["httpx"]
    assert (SDK / "src" / "eventpulse_sdk" / "py.typed").exists()
    assert Path(eventpulse_sdk.__file__).resolve().is_relative_to(SDK)  # the editable install of sdk/python


def test_imports_only_the_standard_library_and_httpx() -> None:
    allowed = set(sys.stdlib_module_names) | {"httpx", "eventpulse_sdk"}
    found: set[str] = set()
    for path in (SDK / "src" / "eventpulse_sdk").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    assert found <= allowed, found - allowed
    assert not found & SERVER_PACKAGES


@pytest.mark.integration  # runs mypy in a subprocess
def test_mypy_strict_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml"], cwd=SDK, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
