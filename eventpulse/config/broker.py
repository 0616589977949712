"""Broker (Kafka API: Tansu locally, Redpanda in docker-compose and production)."""

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section
from eventpulse.config.tls import check_pair


class BrokerSettings(Section):
    """Where the Kafka-API broker is and which topics the platform uses.

    Environment: ``EVENTPULSE_BROKER_BOOTSTRAP``, ``EVENTPULSE_BROKER_EVENTS_TOPIC``,
    ``EVENTPULSE_BROKER_DEAD_LETTER_TOPIC``, ``EVENTPULSE_BROKER_PARTITIONS``,
    ``EVENTPULSE_BROKER_REPLICATION_FACTOR``, ``EVENTPULSE_BROKER_HOST``, ``EVENTPULSE_BROKER_PORT``,
    ``EVENTPULSE_BROKER_COMPRESSION``.
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
