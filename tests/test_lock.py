"""The committed lock (uv.lock) pins every dependency pyproject.toml declares, within its bounds, with hashes.

`make install`, `.ci/run` and the Dockerfile install only from uv.lock (`uv sync --locked` / `--frozen`), so a
dependency added to pyproject.toml without `make lock` would be missing on a fresh machine; and uv itself comes
from requirements/uv.txt, hash-checked, at the version pyproject.toml requires.
"""

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
SDK = tomllib.loads((ROOT / "sdk" / "python" / "pyproject.toml").read_text())


def _group(name: str) -> list[str]:
    """A PEP 735 dependency group with its `include-group` entries expanded."""
    out: list[str] = []
    for item in PYPROJECT["dependency-groups"][name]:
        out += _group(item["include-group"]) if isinstance(item, dict) else [item]
    return out


def _locked() -> dict[str, dict[str, Any]]:
    return {canonicalize_name(p["name"]): p for p in LOCK["package"]}


DECLARED = [
    ("runtime", PYPROJECT["project"]["dependencies"]),
    *((f"group {g}", _group(g)) for g in PYPROJECT["dependency-groups"]),
    ("sdk/python", SDK["project"]["dependencies"]),
]


@pytest.mark.parametrize(("where", "requirements"), DECLARED, ids=[w for w, _ in DECLARED])
def test_lock_pins_every_declared_dependency_within_its_bounds(where: str, requirements: list[str]) -> None:
    locked = _locked()
    for req in map(Requirement, requirements):
        package = locked.get(canonicalize_name(req.name))
        assert package, f"{req.name} ({where}) is declared in pyproject.toml but not in uv.lock: run `make lock`"
        if "version" not in package:  # a workspace member with a dynamic version (the SDK): no bound to check
            assert package["source"].get("editable") and not req.specifier, req
            continue
        assert req.specifier.contains(package["version"], prereleases=True), (
            f"uv.lock pins {req.name}=={package['version']}, outside {req.specifier} ({where}): run `make lock`"
        )


def test_every_registry_package_carries_hashes() -> None:
    for package in LOCK["package"]:
        if "registry" not in package["source"]:
            assert package["source"].get("editable") or package["source"].get("virtual"), package["name"]
            continue
        artifacts = [package["sdist"]] if "sdist" in package else []
        artifacts += package.get("wheels", [])
        assert artifacts, f"uv.lock: {package['name']} has no artifact"
        for artifact in artifacts:
            assert artifact.get("hash", "").startswith("sha256:"), f"uv.lock: {package['name']} {artifact} has no hash"


def test_the_lock_comes_from_pypi() -> None:
    """A lock written on a machine with a private mirror would not install anywhere else."""
    registries = {p["source"]["registry"] for p in LOCK["package"] if "registry" in p["source"]}
    assert registries == {"https://pypi.org/simple"}


def test_the_uv_bootstrap_is_pinned_hashed_and_the_version_pyproject_requires() -> None:
    text = (ROOT / "requirements" / "uv.txt").read_text()
    pins = re.findall(r"^uv==(\S+) \\$", text, re.MULTILINE)
    assert len(pins) == 1, "requirements/uv.txt pins uv exactly once"
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", text)) > 1
    required = SpecifierSet(PYPROJECT["tool"]["uv"]["required-version"])
    assert str(required) == f"=={pins[0]}", "requirements/uv.txt and [tool.uv] required-version disagree"


def test_no_install_reads_the_old_requirements_locks() -> None:
    """Every install goes through uv.lock; requirements/*.lock are gone and nothing names them."""
    assert not list((ROOT / "requirements").glob("*.lock"))
    for path in ("Makefile", "Dockerfile", ".ci/run", "docker-compose.yml", "docker-compose.cluster.yml"):
        assert ".lock" not in (ROOT / path).read_text().replace("uv.lock", ""), path
