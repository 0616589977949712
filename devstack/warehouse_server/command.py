"""`eventpulse warehouse serve` / ``python -m devstack.warehouse_server``: the chDB warehouse over HTTP."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("serve")
@click.option("--host", default=None, help="Listen address [default: EVENTPULSE_WAREHOUSE_HOST or 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Listen port [default: EVENTPULSE_WAREHOUSE_PORT or 8123].")
@click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="chDB data directory [default: EVENTPULSE_WAREHOUSE_PATH or <EVENTPULSE_DATA_DIR>/warehouse].",
)
@click.option(
    "--default-database",
    default=None,
    help="Database of a request that names none [default: EVENTPULSE_WAREHOUSE_DATABASE, i.e. eventpulse].",
)
@click.option("--workers", type=click.IntRange(min=1), default=16, show_default=True, help="Threads running queries.")
@click.option(
    "--users-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Users file (admin, writer, reader), generated if missing [default: EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE "
    "or <path>-users.json].",
)
def serve(
    host: str | None,
    port: int | None,
    path: Path | None,
    default_database: str | None,
    workers: int,
    users_file: Path | None,
) -> None:
    """Serve the chDB warehouse until Ctrl-C or SIGTERM (then close it cleanly)."""
    from devstack.ports import PortInUseError
    from devstack.warehouse_server.engine import EngineOpenError
    from devstack.warehouse_server.serve import serve as run
    from eventpulse.settings import Settings

    settings = Settings()
    path = path if path is not None else settings.warehouse_path()
    if users_file is None and settings.warehouse.credentials_file is not None and path == settings.warehouse_path():
        users_file = settings.warehouse.credentials_file
    try:
        run(
            path,
            host if host is not None else settings.warehouse.host,
            port if port is not None else settings.warehouse.port,
            workers=workers,
            tls_certfile=settings.warehouse.tls_certfile,
            tls_keyfile=settings.warehouse.tls_keyfile,
            users_file=users_file,
            default_database=default_database or settings.warehouse.database,
        )
    except (PortInUseError, EngineOpenError) as exc:
        raise click.ClickException(str(exc)) from None
