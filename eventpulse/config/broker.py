"""Broker (Kafka API: Tansu locally, Redpanda in docker-compose and production)."""

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section
from eventpulse.config.tls import check_pair


class BrokerSettings(Section):
    """Where the Kafka-API broker is and which topics the platform uses.

    Environment: ``EVENTPULSE_BROKER_BOOTSTRAP``, ``EVENTPULSE_BROKER_EVENTS_TOPIC``,
    ``EVENTPULSE_BROKER_DEAD_LETTER_TOPIC``, ``EVENTPULSE_BROKER_PARTITIONS``,
    ``EVENTPULSE_BROKER_REPLICATION_FACTOR``, ``EVENTPULSE_BROKER_HOST``, ``EVENTPULSE_BROKER_PORT``,
    ``EVENTPULSE_BROKER_COMPRESSION``; the local broker's storage: ``EVENTPULSE_BROKER_STORAGE``,
    ``EVENTPULSE_BROKER_STORE_HOST``, ``EVENTPULSE_BROKER_STORE_PORT``, ``EVENTPULSE_BROKER_STORE_BUCKET``,
    ``EVENTPULSE_BROKER_STORE_ACCESS_KEY``, ``EVENTPULSE_BROKER_STORE_SECRET_KEY``,
    ``EVENTPULSE_BROKER_STORE_REGION``, ``EVENTPULSE_BROKER_STORE_PATH``; its retention:
    ``EVENTPULSE_BROKER_RETENTION_MS``, ``EVENTPULSE_BROKER_RETENTION_BYTES``,
    ``EVENTPULSE_BROKER_RETENTION_CHECK_S``, ``EVENTPULSE_BROKER_COMPACT_BYTES``,
    ``EVENTPULSE_BROKER_RECOVER_ON_START``.

    ``storage="s3"`` (the default, chosen by ``benchmarks/broker_storage.py``: see
    ``devstack/broker/README.md``) keeps the local broker's log in an object store on disk
    (s3rver under ``<data_dir>/broker``), so acknowledged events survive a broker kill -9 and a
    restart of the stack; ``"memory"`` keeps it in the broker process (lost on every restart).
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_BROKER_")

    bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated.")
    events_topic: str = Field("events", description="Topic the gateway produces accepted events to.")
    dead_letter_topic: str = Field("events.dead_letters", description="Topic for rejected events.")
    partitions: int = Field(4, ge=1, description="Partitions created for each topic.")
    replication_factor: int = Field(1, ge=1, description="Replication factor for created topics.")
    host: str = Field("127.0.0.1", description="Listen address of the local (Tansu) broker.")
    port: int = Field(9092, description="Listen port of the local (Tansu) broker.")
    tls_certfile: Path | None = Field(
        None, description="The local broker accepts only TLS connections, with this certificate chain (PEM)."
    )
    tls_keyfile: Path | None = Field(None, description="The local broker's private key (PEM).")
    security_protocol: Literal["PLAINTEXT", "SSL"] = Field(
        "PLAINTEXT", description="How every client reaches the broker (librdkafka's security.protocol)."
    )
    ssl_ca_location: Path | None = Field(
        None,
        description="CA bundle (PEM) clients verify the broker against with SSL (librdkafka's ssl.ca.location);"
        " empty: the system's CAs.",
    )
    compression: Literal["none", "lz4", "zstd", "snappy", "gzip"] = Field(
        "none",
        description=(
            "Producer compression. 'none' on one machine (consumers decode ~3x faster; measured on Tansu), "
            "'lz4' where bytes cost: over a network and on Redpanda's disks (~3x smaller)."
        ),
    )
    storage: Literal["s3", "memory"] = Field(
        "s3",
        description="Local broker storage: 's3' (durable, an object store on disk) or 'memory' (lost on restart).",
    )
    store_host: str = Field("127.0.0.1", description="Listen address of the local object store (s3rver).")
    store_port: int = Field(9000, description="Listen port of the local object store (s3rver).")
    store_bucket: str = Field("tansu", description="Bucket that holds the local broker's log.")
    store_access_key: str = Field("S3RVER", description="Access key of the object store (s3rver accepts S3RVER).")
    store_secret_key: SecretStr = Field(SecretStr("S3RVER"), description="Secret key of the object store.")
    store_region: str = Field("us-east-1", description="Region name given to S3 clients of the object store.")
    store_path: Path | None = Field(None, description="Directory of the object store; default <data_dir>/broker.")
    retention_ms: int = Field(
        6 * 3600 * 1000,
        ge=0,
        description="Keep at least this long (ms) of each partition's log; older batches may be deleted. 0: no limit.",
    )
    retention_bytes: int = Field(
        256 * 1024 * 1024,
        ge=0,
        description="Most bytes of record batches kept per partition; the oldest go first. 0: no limit.",
    )
    compact_bytes: int = Field(
        1024 * 1024,
        ge=0,
        description="Merge runs of small record batches into objects of up to this many bytes (Tansu lists every "
        "object of a partition on each fetch). 0: never.",
    )
    retention_check_s: float = Field(30.0, gt=0, description="Seconds between two retention passes of the broker.")
    recover_on_start: bool = Field(
        True,
        description="Before the durable broker starts, bring stored producer sequences and high watermarks back to "
        "the stored batches (a kill -9 mid-produce otherwise loses the retried, acknowledged batch). Off only to "
        "show that loss.",
    )

    def store_endpoint(self) -> str:
        """The object store's URL (``http://host:port``), for S3 clients and Tansu's ``AWS_ENDPOINT``."""
        host = "127.0.0.1" if self.store_host in ("0.0.0.0", "::", "") else self.store_host
        return f"http://{host}:{self.store_port}"

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        check_pair("broker", self.tls_certfile, self.tls_keyfile)
        return self

    def client_security(self) -> dict[str, str]:
        """librdkafka options for TLS, merged into every client config (`eventpulse.broker.admin`)."""
        if self.security_protocol == "PLAINTEXT":
            return {}
        options: dict[str, str] = {"security.protocol": self.security_protocol}
        if self.ssl_ca_location is not None:
            options["ssl.ca.location"] = str(self.ssl_ca_location)
        return options
