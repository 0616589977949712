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

from devstack.broker.objectstore import READY_LINE, object_store_argv
from devstack.supervisor import RestartPolicy, ServiceSpec
from eventpulse.access.credentials import users_file_for
from eventpulse.config.stack import StackSettings
from eventpulse.settings import Settings

OPTIONAL_SERVICES = ("redis", "gateway", "dagster", "dashboard")


@dataclass(frozen=True)
class StackOptions:
    """What to start besides the core (broker, warehouse, migrations, dataflow)."""

    traffic: bool = False
    history: bool = False  # fill the days before today once (`eventpulse demo`), after the migrations
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


def stack_users_file(settings: Settings) -> Path:
    """The users file of this stack's warehouse (the server's ``--users-file``)."""
    configured = settings.warehouse.credentials_file
    return (configured or users_file_for(settings.warehouse_path())).resolve()


def stack_environment(settings: Settings, shared_state: bool = True) -> dict[str, str]:
    """Variables that point every child at this stack's broker, warehouse (and its users file), Redis
    (unless ``shared_state`` is off: `eventpulse up --without redis`) and data directory."""
    data_dir = settings.data_dir.resolve()
    r = settings.redis
    return {
        "EVENTPULSE_REDIS_URL": f"redis://{r.host}:{r.port}/0" if shared_state else "",
        "EVENTPULSE_DATA_DIR": str(data_dir),
        "EVENTPULSE_BROKER_BOOTSTRAP": f"{settings.broker.host}:{settings.broker.port}",
        "EVENTPULSE_WAREHOUSE_URL": f"{_scheme(settings.warehouse.tls_certfile)}://"
        f"{settings.warehouse.host}:{settings.warehouse.port}",
        "EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE": str(stack_users_file(settings)),
        "DAGSTER_HOME": str(data_dir / "dagster"),
        "PYTHONUNBUFFERED": "1",
    }


def _scheme(tls_certfile: Path | None) -> str:
    return "https" if tls_certfile else "http"


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


def redis_service(settings: Settings, env: dict[str, str]) -> ServiceSpec:
    """Debian's redis-server (``make redis``) on ``EVENTPULSE_REDIS_HOST``:``EVENTPULSE_REDIS_PORT``,
    keeping an append-only file under the data directory, so acknowledged ids outlive a restart of
    the stack as they outlive one of the gateway."""
    r = settings.redis
    argv = ["redis-server", "--bind", r.host, "--port", str(r.port), "--dir", str(settings.data_dir.resolve())]
    argv += ["--appendonly", "yes", "--appenddirname", "redis", "--save", ""]
    return ServiceSpec("redis", argv, env=env, port=r.port, host=r.host, timeout=30)


def _flow_argv(settings: Settings, workers: int) -> list[str]:
    return [
        *(sys.executable, "-m", "bytewax.run", "flows.dataflow:flow", "-w", str(workers)),
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
    tls: bool = False,
) -> ServiceSpec:
    """A service that is ready when ``http://host:port<ready_path>`` answers (with TLS: when its port
    accepts connections; the supervisor does not hold the CA its clients are given)."""
    return ServiceSpec(
        name,
        argv,
        env=env,
        url=None if tls else f"http://{host}:{port}{ready_path}",
        port=port,
        host=host,
        timeout=timeout,
        depends_on=list(depends_on),
    )


def stack_services(settings: Settings, options: StackOptions) -> list[ServiceSpec]:
    """The ordered services of the stack for these settings."""
    py = sys.executable
    shared_state = "redis" not in options.without
    env = stack_environment(settings, shared_state)
    b, w, g, o, d = settings.broker, settings.warehouse, settings.gateway, settings.orchestration, settings.dashboard
    durable = b.storage == "s3"
    services = [
        *([redis_service(settings, env)] if shared_state else []),
        ServiceSpec(
            "broker",
            [
                *(py, "-m", "devstack.broker", "--host", b.host, "--port", str(b.port)),
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
                *(py, "-m", "devstack.warehouse_server", "--host", w.host, "--port", str(w.port)),
                *("--path", str(settings.warehouse_path().resolve())),
                *("--users-file", str(stack_users_file(settings))),
            ],
            env,
            w.host,
            w.port,
            "/ping",
            timeout=60,
            depends_on=(),
            tls=w.tls_certfile is not None,
        ),
        ServiceSpec("migrate", [py, "-m", "cli", "migrate"], env=env, oneshot=True, depends_on=["warehouse"]),
        ServiceSpec("flow", _flow_argv(settings, options.workers), env=env, depends_on=["broker", "migrate"]),
    ]
    if options.history:  # skips the days already filled, so every start may run it
        demo = [py, "-m", "cli", "demo"]
        services.append(ServiceSpec("history", demo, env=env, oneshot=True, depends_on=["migrate"], timeout=600))
    if "dashboard" not in options.without and settings.dashboard.sign_in:
        # the first run creates `admin` and prints its password; later runs print that one exists
        bootstrap = [py, "-m", "cli", "users", "bootstrap"]
        services.append(ServiceSpec("signin", bootstrap, env=env, oneshot=True, depends_on=["migrate"]))
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
    optional = {  # (redis, when wanted, is first of all: above)
        "gateway": _http_service(
            "gateway",
            [py, "-m", "gateway"],
            env,
            g.host,
            g.port,
            "/api/health",
            depends_on=["broker", "migrate", *(["redis"] if shared_state else [])],
            tls=g.tls_certfile is not None,
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
            depends_on=["migrate", *(["signin"] if settings.dashboard.sign_in else [])],
        ),
    }
    if options.history:  # the two heaviest starters wait for the history, which then has the cores to itself
        optional["dagster"] = replace(optional["dagster"], depends_on=[*optional["dagster"].depends_on, "history"])
    services += [spec for name, spec in optional.items() if name not in options.without]
    if options.traffic:
        argv = [py, "-m", "cli", "traffic", "--rate", str(options.traffic_rate)]
        depends = ["broker", "migrate"]
        if options.traffic_target == "gateway":
            if "gateway" in options.without:
                raise ValueError("traffic through the gateway needs the gateway")
            argv += ["--target", "gateway", "--create-key", "demo"]
            depends.append("gateway")
        if options.history:
            depends.append("history")
        services.append(ServiceSpec("traffic", argv, env=env, depends_on=depends))
    policy = restart_policy(settings.stack)  # one-shots (migrate) are done once they exit 0
    return [spec if spec.oneshot else replace(spec, restart=policy) for spec in services]
