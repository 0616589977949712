"""Run the warehouse server: uvicorn in front of `WarehouseApp`, chDB opened and closed cleanly."""

from __future__ import annotations

import errno
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from devstack.ports import PortInUseError
from devstack.warehouse_server.app import WarehouseApp
from devstack.warehouse_server.auth import Authenticator
from devstack.warehouse_server.engine import Engine
from eventpulse.access.credentials import ensure_users_file, users_file_for


def build_app(engine: Engine, users_file: Path, **options: Any) -> WarehouseApp:
    """The ASGI app over an open engine, authenticating against ``users_file`` (generated with
    random passwords if missing); ``options`` go to `WarehouseApp` (e.g. ``workers``)."""
    ensure_users_file(users_file)
    return WarehouseApp(engine, authenticator=Authenticator(users_file), **options)


def _listen(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restarts despite TIME_WAIT; not a 2nd listener
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"cannot listen on {host}:{port}: the address is already in use "
                "(another warehouse server or ClickHouse? choose another --port)"
            ) from None
        raise
    sock.set_inheritable(True)
    return sock


@contextmanager
def _deferred_signals() -> Iterator[list[int]]:
    """Note SIGINT/SIGTERM instead of dying, so that chDB is always closed.

    uvicorn handles both signals while it serves and raises them again when it returns; these
    handlers receive them then (and any that arrive while the engine opens).
    """
    received: list[int] = []
    wanted = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda sig, _frame: received.append(sig)) for sig in wanted}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stop: list[int], ready_line: str) -> None:
        super().__init__(config)
        self._stop = stop
        self._ready_line = ready_line

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._stop:  # a signal arrived before uvicorn took over the handlers
            self.should_exit = True
        elif self.started:
            print(self._ready_line, flush=True)


def serve(
    path: Path,
    host: str,
    port: int,
    *,
    workers: int = 16,
    users_file: Path | None = None,
    tls_certfile: Path | None = None,
    tls_keyfile: Path | None = None,
    default_database: str = "default",
) -> None:
    """Serve the chDB warehouse at ``path`` over ClickHouse's HTTP interface until SIGINT/SIGTERM.

    Requests authenticate as one of the users in ``users_file`` (default
    ``<path>-users.json``, generated with mode 0600 on first start). With ``tls_certfile`` and
    ``tls_keyfile`` (PEM) it serves HTTPS only, as ClickHouse's ``https_port`` does. A request that
    names no database lands in ``default_database`` (created if missing), as with ClickHouse's
    ``default_database`` server setting. Raises
    `PortInUseError` if ``host:port`` is taken and `EngineOpenError` if another process has
    ``path`` open.
    """
    path = Path(path).resolve()
    users_file = Path(users_file).resolve() if users_file is not None else users_file_for(path)
    if host not in ("127.0.0.1", "localhost", "::1") and not tls_certfile:
        print(f"warning: the warehouse server listens on {host} over plain HTTP", flush=True)
    with _deferred_signals() as received:
        sock = _listen(host, port)
        try:
            engine = Engine(path, default_database)
        except BaseException:
            sock.close()
            raise
        try:
            app = build_app(engine, users_file, workers=workers)
        except BaseException:
            sock.close()
            engine.close()
            raise
        try:
            tls: dict[str, Any] = (
                {"ssl_certfile": str(tls_certfile), "ssl_keyfile": str(tls_keyfile)} if tls_certfile else {}
            )
            config = uvicorn.Config(
                app,
                **tls,
                lifespan="off",
                log_level="warning",
                access_log=False,
                timeout_keep_alive=30,
                timeout_graceful_shutdown=10,
            )
            shown_host = f"[{host}]" if ":" in host else host
            scheme = "https" if tls_certfile else "http"
            server = _Server(config, received, f"warehouse serving {path} on {scheme}://{shown_host}:{port}")
            if not received:
                server.run(sockets=[sock])
        finally:
            sock.close()
            app.close()
            engine.close()
    print("warehouse stopped", flush=True)
