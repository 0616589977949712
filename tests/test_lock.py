"""The committed lock files pin every dependency that pyproject.toml declares, within its bounds.

`make install` and the Dockerfile install only from these files (``--require-hashes``), so a
dependency added to pyproject.toml without `make lock` would be missing on a fresh machine.
"""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)


def _pins(lock: Path) -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    for name, version in _PIN.findall(lock.read_text()):
        pins.setdefault(canonicalize_name(name), set()).add(version)
    return pins


def _declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    if extra:
        names += project["optional-dependencies"][extra]
    return [Requirement(r) for r in names]


@pytest.mark.parametrize(("lock", "extra"), [("runtime.lock", None), ("dev.lock", "dev")])
def test_lock_pins_every_declared_dependency_within_its_bounds(lock: str, extra: str | None) -> None:
    pins = _pins(ROOT / "requirements" / lock)
    for req in _declared(extra):
        versions = pins.get(canonicalize_name(req.name))
        assert versions, f"{req.name} is declared in pyproject.toml but not pinned in {lock}: run `make lock`"
        assert any(req.specifier.contains(v, prereleases=True) for v in versions), (
            f"{lock} pins {req.name}=={versions}, outside {req.specifier}: run `make lock`"
        )


def test_every_pin_carries_a_hash() -> None:
    for lock in ("runtime.lock", "dev.lock"):
        text = (ROOT / "requirements" / lock).read_text()
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[-1])
        for entry in entries:
            if "==" in entry.split("\n", 1)[0]:
                assert "--hash=sha256:" in entry, f"{lock}: {entry.splitlines()[0]} has no hash"
