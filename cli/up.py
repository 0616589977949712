"""`eventpulse up`: the whole local stack in one command."""

import shutil
from pathlib import Path

import click

from devstack.metrics import RestartMetrics
from devstack.stack_services import (
    OPTIONAL_SERVICES,
    StackOptions,
    ensure_recovery,
    prepare_dagster_home,
    stack_environment,
    stack_services,
    stack_users_file,
)
from devstack.supervisor import StartupError, Supervisor
from eventpulse.access.credentials import ensure_users_file
from eventpulse.settings import Settings


@click.command("up")
@click.option("--traffic/--no-traffic", default=False, show_default=True, help="Also run synthetic traffic.")
@click.option(
    "--history/--no-history",
    default=None,
    help="Fill the days before today with demo history once started (`eventpulse demo`; "
    "default EVENTPULSE_STACK_HISTORY, on in `make run`).",
)
@click.option("--rate", type=float, default=1000.0, show_default=True, help="Synthetic events per second.")
@click.option(
    "--traffic-target",
    type=click.Choice(["broker", "gateway"]),
    default="broker",
    show_default=True,
    help="Send synthetic traffic straight to the topic or through the gateway (as tenant 'demo').",
)
@click.option("--workers", type=int, default=1, show_default=True, help="Bytewax workers for the dataflow.")
@click.option(
    "--without",
    type=click.Choice(OPTIONAL_SERVICES),
    multiple=True,
    help="Leave out an optional service (repeatable).",
)
def up(
    traffic: bool, history: bool | None, rate: float, traffic_target: str, workers: int, without: tuple[str, ...]
) -> None:
    """Start Redis, broker, warehouse, migrations, dataflow, gateway, Dagster and Streamlit on 127.0.0.1.

    Logs stream with a prefix per service; Ctrl-C stops everything and frees every port. A crashed
    service restarts with backoff (EVENTPULSE_STACK_RESTART_*) and its restarts are written to
    pipeline_metrics; if this command is killed, even with SIGKILL, its services stop too.
    """
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    options = StackOptions(
        traffic=traffic,
        history=settings.stack.history if history is None else history,
        traffic_rate=rate,
        traffic_target=traffic_target,
        workers=workers,
        without=frozenset(without),
    )
    if "redis" not in options.without and shutil.which("redis-server") is None:
        raise click.UsageError("redis-server is not installed: run `make redis`, or `eventpulse up --without redis`")
    ensure_recovery(settings)
    ensure_users_file(stack_users_file(settings))  # the warehouse's users, generated on the first `up`
    if "dagster" not in options.without:
        prepare_dagster_home(settings, Path.cwd())
    try:
        services = stack_services(settings, options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    # restarts go to this stack's warehouse (the one its services are pointed at)
    stack_url = stack_environment(settings, "redis" not in options.without)["EVENTPULSE_WAREHOUSE_URL"]
    metrics = RestartMetrics(
        settings.warehouse.model_copy(update={"url": stack_url, "credentials_file": stack_users_file(settings)})
    )
    supervisor = Supervisor(services, on_event=metrics.record)
    try:
        code = supervisor.run()
    except StartupError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        metrics.close()
    if supervisor.gave_up:
        click.echo(
            "eventpulse up stopped on a crash loop (its last lines are above); the restart limit is "
            f"{settings.stack.restart_limit} restarts in {settings.stack.restart_window_s:g} s "
            "(EVENTPULSE_STACK_RESTART_LIMIT, EVENTPULSE_STACK_RESTART_WINDOW_S)",
            err=True,
        )
    raise SystemExit(code)
