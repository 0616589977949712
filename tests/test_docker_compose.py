"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine on CI machines)."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from eventpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def settings_env_names(cls: type[BaseSettings] = Settings) -> set[str]:
    """Every environment variable the settings classes read: section prefix + field name."""
    prefix = cls.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            names |= settings_env_names(field.annotation)
        else:
            names.add(f"{prefix}{name}".upper())
            if isinstance(field.validation_alias, str):
                names.add(field.validation_alias.upper())
    return names


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def with_defaults(value: str) -> str:
    """Resolve ``${VAR:-default}`` the way compose does when VAR is unset."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def is_oneshot(name: str) -> bool:
    return SERVICES[name].get("restart") == "no"


def test_expected_services_are_defined() -> None:
    expected = {"redpanda", "clickhouse", "minio", "buckets", "topics", "migrate", "flow", "gateway", "dagster"}
    assert expected | {"dashboard"} <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_healthcheck(name: str) -> None:
    check = SERVICES[name].get("healthcheck")
    assert check, f"{name} has no healthcheck"
    if check.get("disable"):
        assert is_oneshot(name), f"{name} disables its healthcheck but is not a one-shot (restart: 'no')"
    else:
        assert check.get("test"), f"{name}: healthcheck without a test"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned(name: str) -> None:
    image = SERVICES[name].get("image")
    assert image, f"{name} has no image"
    assert "$" not in image, f"{name}: an image chosen by a variable cannot be checked"
    repo, _, digest = image.partition("@")
    tag = repo.rsplit("/", 1)[-1].partition(":")[2]
    assert tag or digest.startswith("sha256:"), f"{name}: {image} has no tag"
    assert tag != "latest", f"{name}: {image} uses latest"


def test_the_dockerfile_base_image_is_pinned() -> None:
    bases = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert bases
    for base in bases:
        tag = base.partition("@")[0].rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", base


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_depends_on_waits_for_health_or_completion(name: str) -> None:
    depends = SERVICES[name].get("depends_on", {})
    assert isinstance(depends, dict), f"{name}: depends_on must use conditions, not a list"
    for target, rule in depends.items():
        assert target in SERVICES, f"{name} depends on unknown service {target}"
        condition = rule.get("condition")
        if is_oneshot(target):
            assert condition == "service_completed_successfully", f"{name} -> {target}: {condition}"
        else:
            assert condition == "service_healthy", f"{name} -> {target}: {condition}"
            assert not SERVICES[target]["healthcheck"].get("disable")


def test_every_eventpulse_variable_is_a_real_setting() -> None:
    valid = settings_env_names()
    used = {key for service in SERVICES.values() for key in environment(service) if key.startswith("EVENTPULSE_")}
    used |= {m.group(1) for m in INTERPOLATION.finditer(COMPOSE_TEXT) if m.group(1).startswith("EVENTPULSE_")}
    assert {"EVENTPULSE_BROKER_BOOTSTRAP", "EVENTPULSE_WAREHOUSE_URL"} <= used
    unknown = sorted(used - valid)
    assert not unknown, f"not settings fields (valid names come from eventpulse/config/): {unknown}"


def test_app_environment_parses_into_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The values, not only the names, must be valid for the settings' types."""
    for key in settings_env_names():
        monkeypatch.delenv(key, raising=False)
    for key, value in environment(SERVICES["flow"]).items():
        if key.startswith("EVENTPULSE_"):
            monkeypatch.setenv(key, with_defaults(value))
    settings = Settings()
    assert settings.broker.bootstrap == "redpanda:9092"
    assert settings.broker.compression == "lz4"
    assert settings.warehouse.url == "http://clickhouse:8123"
    assert settings.orchestration.archive_url.startswith("s3://")


def test_published_ports_bind_localhost_and_volumes_are_declared() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            assert source.startswith((".", "/")) or source in declared, f"{name}: undeclared volume {source}"
