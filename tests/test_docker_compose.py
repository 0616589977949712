"""The compose files and the Dockerfile, checked statically (no Docker engine on CI machines).

Every rule holds for both files: docker-compose.yml (one host) and docker-compose.cluster.yml
(the cluster profile, checked further in tests/deploy/test_cluster_compose.py).
"""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.cluster.yml")
TEXTS: dict[str, str] = {name: (ROOT / name).read_text() for name in COMPOSE_FILES}
FILES: dict[str, dict[str, Any]] = {name: yaml.safe_load(text) for name, text in TEXTS.items()}
COMPOSE_TEXT = TEXTS["docker-compose.yml"]
COMPOSE: dict[str, Any] = FILES["docker-compose.yml"]
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ALL_SERVICES = [(f, name) for f in COMPOSE_FILES for name in sorted(FILES[f]["services"])]
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


def is_oneshot(name: str, file: str = "docker-compose.yml") -> bool:
    return FILES[file]["services"][name].get("restart") == "no"


def image_of(file: str, prefix: str) -> str:
    """The one image of ``file`` that starts with ``prefix`` (all services using it agree)."""
    images = {s["image"] for s in FILES[file]["services"].values() if s.get("image", "").startswith(prefix)}
    assert len(images) == 1, f"{file}: {prefix} images {images}"
    return images.pop()


def test_expected_services_are_defined() -> None:
    expected = {
        "redpanda",
        "clickhouse",
        "minio",
        "buckets",
        "topics",
        "migrate",
        "flow",
        "gateway",
        "dagster",
        "redis",
    }
    assert expected | {"dashboard"} <= set(SERVICES)


@pytest.mark.parametrize(("file", "name"), ALL_SERVICES)
def test_every_service_has_a_healthcheck(file: str, name: str) -> None:
    check = FILES[file]["services"][name].get("healthcheck")
    assert check, f"{name} has no healthcheck"
    if check.get("disable"):
        assert is_oneshot(name, file), f"{name} disables its healthcheck but is not a one-shot (restart: 'no')"
    else:
        assert check.get("test"), f"{name}: healthcheck without a test"


@pytest.mark.parametrize(("file", "name"), ALL_SERVICES)
def test_every_image_is_pinned(file: str, name: str) -> None:
    image = FILES[file]["services"][name].get("image")
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


@pytest.mark.parametrize(("file", "name"), ALL_SERVICES)
def test_depends_on_waits_for_health_or_completion(file: str, name: str) -> None:
    services = FILES[file]["services"]
    depends = services[name].get("depends_on", {})
    assert isinstance(depends, dict), f"{name}: depends_on must use conditions, not a list"
    for target, rule in depends.items():
        assert target in services, f"{name} depends on unknown service {target}"
        condition = rule.get("condition")
        if is_oneshot(target, file):
            assert condition == "service_completed_successfully", f"{name} -> {target}: {condition}"
        else:
            assert condition == "service_healthy", f"{name} -> {target}: {condition}"
            assert not services[target]["healthcheck"].get("disable")


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_every_eventpulse_variable_is_a_real_setting(file: str) -> None:
    valid = settings_env_names()
    services = FILES[file]["services"].values()
    used = {key for service in services for key in environment(service) if key.startswith("EVENTPULSE_")}
    used |= {m.group(1) for m in INTERPOLATION.finditer(TEXTS[file]) if m.group(1).startswith("EVENTPULSE_")}
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
    assert settings.redis.url == "redis://redis:6379/0"


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_every_gateway_shares_its_state_through_the_redis_service(file: str) -> None:
    """Gateways behind one address must share rate limits and acknowledged ids: each one gets the
    compose Redis's URL and waits for it to be healthy."""
    services = FILES[file]["services"]
    gateways = [name for name in services if name.startswith("gateway")]
    assert gateways
    redis_port = "6379"
    for name in gateways:
        url = environment(services[name]).get("EVENTPULSE_REDIS_URL", "")
        assert url == f"redis://redis:{redis_port}/0", f"{file}: {name} has no shared state store ({url!r})"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["redis"]["image"].startswith("redis:7.")


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_published_ports_bind_localhost_and_volumes_are_declared(file: str) -> None:
    declared = set(FILES[file].get("volumes") or {})
    published: list[str] = []
    for name, service in FILES[file]["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
            published.append(str(port).rsplit(":", 1)[0])
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            assert source.startswith((".", "/")) or source in declared, f"{name}: undeclared volume {source}"
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
    assert len(published) == len(set(published)), f"{file}: a host port is published twice"


def release(image: str) -> tuple[int, int]:
    """``clickhouse/clickhouse-server:26.9[.x.y]`` -> (26, 9)."""
    tag = image.rsplit(":", 1)[1]
    match = re.match(r"v?(\d+)\.(\d+)", tag)
    assert match, f"{image}: the tag names no release"
    return int(match[1]), int(match[2])


def test_both_compose_files_run_the_same_engine_releases() -> None:
    for prefix in ("clickhouse/clickhouse-server:", "docker.redpanda.com/redpandadata/redpanda:", "redis:"):
        assert image_of("docker-compose.yml", prefix) == image_of("docker-compose.cluster.yml", prefix)


def test_the_compose_redpanda_is_a_supported_release() -> None:
    """Redpanda supports a feature release for about a year: 24.3 (the old pin) ended in 2025-12."""
    assert release(image_of("docker-compose.yml", "docker.redpanda.com/redpandadata/redpanda:")) >= (26, 1)


def test_the_compose_clickhouse_is_not_older_than_the_engine_the_tests_run(
    chdb_warehouse: WarehouseSettings,
) -> None:
    """The tests prove the migrations and queries on chDB's engine; the compose server must have
    every feature they use (24.8 had no `text` index, so `migrate` stopped at 0040)."""
    client = create_client(chdb_warehouse, role="admin")
    engine = str(client.command("SELECT version()"))
    tested = tuple(int(part) for part in engine.split(".")[:2])
    for file in COMPOSE_FILES:
        compose = release(image_of(file, "clickhouse/clickhouse-server:"))
        assert compose >= tested, f"{file}: ClickHouse {compose} is older than the tested engine {engine}"


def test_the_release_comparison_refuses_the_old_pin() -> None:
    """Negative control: the release that could not run migration 0040 fails the comparison."""
    assert release("clickhouse/clickhouse-server:24.8.14.39") < (26, 9)
    assert release("docker.redpanda.com/redpandadata/redpanda:v24.3.11") < (26, 1)
