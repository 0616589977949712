"""The services of the local stack, in the order `eventpulse up` starts them.

`stack_services` is a pure function of the settings and options, so what runs where can be
checked without starting anything. Every child gets the same ``EVENTPULSE_*`` environment,
pointing it at the local broker and warehouse this stack starts.
"""

import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from eventpulse.broker.objectstore import READY_LINE, object_store_argv
from eventpulse.config.stack import StackSettings
from eventpulse.settings import Settings
from eventpulse.stack.supervisor import RestartPolicy, ServiceSpec

OPTIONAL_SERVICES = ("gateway", "dagster", "dashboard")


@dataclass(frozen=True)
class StackOptions:
    """What to start besides the core (broker, warehouse, migrations, dataflow)."""

    traffic: bool = False
    traffic_rate: float = 1000.0
    traffic_target: str = "broker"  # or "gateway": through the HTTP API with a demo tenant's key
    workers: int = 1
    without: frozenset[str] = frozenset()


def prepare_dagster_home(settings: Settings, repo_root: Path) -> Path:
    """Create ``<data_dir>/dagster`` with the project's instance config (queued runs, limits)."""
    home = settings.data_dir.resolve() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(repo_root / "orchestration" / "dagster.yaml", config)
    return home


def stack_environment(settings: Settings) -> dict[str, str]:
    """Variables that point every child at this stack's broker, warehouse and data directory."""
    data_dir = settings.data_dir.resolve()
    return {
        "EVENTPULSE_DATA_DIR": str(data_dir),
        "EVENTPULSE_BROKER_BOOTSTRAP": f"{settings.broker.host}:{settings.broker.port}",
        "EVENTPULSE_WAREHOUSE_URL": f"http://{settings.warehouse.host}:{settings.warehouse.port}",
        "DAGSTER_HOME": str(data_dir / "dagster"),
        "PYTHONUNBUFFERED": "1",
    }


def recovery_dir(settings: Settings) -> Path:
    """Where the dataflow keeps its Bytewax recovery snapshots (offsets and window state)."""
    return settings.data_dir.resolve() / "recovery"


def ensure_recovery(settings: Settings) -> Path:
    """The dataflow's recovery store, created only when missing (one recovery partition).

    The store is kept across starts, so `eventpulse up` stopped and started again resumes where the
    flow was: offsets and window state. If the broker lost its log meanwhile (memory storage, a
    topic recreated), the saved offsets are out of range or name an older topic incarnation: the
    flow's source resets by ``EVENTPULSE_STREAM_OFFSET_RESET`` and records an incident (see
    `flows.source`), and the window state is kept. Delete ``<data_dir>/recovery`` to start over.
    """
    directory = recovery_dir(settings)
    if not any(directory.glob("part-*.sqlite3")):
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "bytewax.recovery", str(directory), "1"], check=True)
    return directory


def restart_policy(stack: StackSettings) -> RestartPolicy:
    """The restart policy of every long-running service (``EVENTPULSE_STACK_RESTART_*``)."""
    return RestartPolicy(
        backoff_s=stack.restart_backoff_s,
        max_backoff_s=stack.restart_backoff_max_s,
        limit=stack.restart_limit,
        window_s=stack.restart_window_s,
    )


def _flow_argv(settings: Settings, workers: int) -> list[str]:
    return [
        *(sys.executable, "-m", "bytewax.run", "flows.events:flow", "-w", str(workers)),
        *("-r", str(recovery_dir(settings)), "-s", "1", "-b", "0"),
    ]


def _http_service(
    name: str,
    argv: list[str],
    env: dict[str, str],
    host: str,
    port: int,
    ready_path: str,
    *,
    timeout: float = 60,
    depends_on: tuple[str, ...] | list[str] = ("migrate",),
) -> ServiceSpec:
    """A service that is ready when ``http://host:port<ready_path>`` answers."""
    return ServiceSpec(
        name,
        argv,
        env=env,
        url=f"http://{host}:{port}{ready_path}",
        port=port,
        host=host,
        timeout=timeout,
        depends_on=list(depends_on),
    )


def stack_services(settings: Settings, options: StackOptions) -> list[ServiceSpec]:
    """The ordered services of the stack for these settings."""
    py = sys.executable
    env = stack_environment(settings)
    b, w, g, o, d = settings.broker, settings.warehouse, settings.gateway, settings.orchestration, settings.dashboard
    durable = b.storage == "s3"
    services = [
        ServiceSpec(
            "broker",
            [
                *(py, "-m", "eventpulse.broker", "--host", b.host, "--port", str(b.port)),
                *("--partitions", str(b.partitions), "--storage", b.storage, "--store-port", str(b.store_port)),
            ],
            env=env,
            port=b.port,
            host=b.host,
            ready_line="broker ready on",
            timeout=30,
            depends_on=["objectstore"] if durable else [],
        ),
        _http_service(
            "warehouse",
            [
                *(py, "-m", "eventpulse.warehouse.server", "--host", w.host, "--port", str(w.port)),
                *("--path", str(settings.warehouse_path().resolve())),
            ],
            env,
            w.host,
            w.port,
            "/ping",
            timeout=60,
            depends_on=(),
        ),
        ServiceSpec("migrate", [py, "-m", "eventpulse", "migrate"], env=env, oneshot=True, depends_on=["warehouse"]),
        ServiceSpec("flow", _flow_argv(settings, options.workers), env=env, depends_on=["broker", "migrate"]),
    ]
    if durable:  # the broker's log lives here: started first, kept under <data_dir>/broker
        store = ServiceSpec(
            "objectstore",
            object_store_argv(b, settings.broker_store_path().resolve()),
            env=env,
            port=b.store_port,
            host=b.store_host,
            ready_line=READY_LINE,
            timeout=30,
        )
        services.insert(0, store)
    optional = {
        "gateway": _http_service(
            "gateway", [py, "-m", "gateway"], env, g.host, g.port, "/api/health", depends_on=["broker", "migrate"]
        ),
        "dagster": _http_service(
            "dagster",
            [py, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", o.host, "-p", str(o.port)],
            env,
            o.host,
            o.port,
            "/server_info",
            timeout=180,
        ),
        "dashboard": _http_service(
            "dashboard",
            [
                *(py, "-m", "streamlit", "run", "dashboards/streamlit_app.py", "--server.headless", "true"),
                *("--server.address", d.host, "--server.port", str(d.port)),
                *("--browser.gatherUsageStats", "false"),
            ],
            env,
            d.host,
            d.port,
            "/_stcore/health",
            timeout=90,
        ),
    }
    services += [spec for name, spec in optional.items() if name not in options.without]
    if options.traffic:
        argv = [py, "-m", "eventpulse", "traffic", "--rate", str(options.traffic_rate)]
        depends = ["broker", "migrate"]
        if options.traffic_target == "gateway":
            if "gateway" in options.without:
                raise ValueError("traffic through the gateway needs the gateway")
            argv += ["--target", "gateway", "--create-key", "demo"]
            depends.append("gateway")
        services.append(ServiceSpec("traffic", argv, env=env, depends_on=depends))
    policy = restart_policy(settings.stack)  # one-shots (migrate) are done once they exit 0
    return [spec if spec.oneshot else replace(spec, restart=policy) for spec in services]
