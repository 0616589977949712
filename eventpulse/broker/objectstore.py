"""The durable local broker's object store: s3rver on disk, and how Tansu and boto3 reach it.

Tansu's ``s3://BUCKET/`` storage engine keeps every produced record batch as one object
(``clusters/<cluster>/topics/<topic>/partitions/<partition>/records/<base offset>.batch``) and its
metadata (producers, topics, each partition's watermarks) as JSON objects it updates with
conditional PUTs. The local stack serves that bucket with s3rver (npm, installed by ``make install``
from ``eventpulse/broker/s3rver/package-lock.json``), started through ``server.js``, which makes
s3rver honour those conditional writes and write objects atomically. Why s3rver, and what else
was compared: ``eventpulse/broker/README.md``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from eventpulse.broker.errors import BrokerBinaryNotFound
from eventpulse.config.broker import BrokerSettings

S3RVER_DIR = Path(__file__).with_name("s3rver")
READY_LINE = "object store ready on"


def find_node() -> str:
    """Path of the ``node`` executable (Node.js 18 or newer runs s3rver)."""
    node = shutil.which("node")
    if node is None:
        raise BrokerBinaryNotFound("the durable broker's object store needs Node.js: run `make install`")
    return node


def object_store_argv(settings: BrokerSettings, directory: Path, *, verbose: bool = False) -> list[str]:
    """The command that serves ``settings.store_bucket`` from ``directory`` on the store's address."""
    if not (S3RVER_DIR / "node_modules" / "s3rver").is_dir():
        raise BrokerBinaryNotFound(
            f"s3rver is not installed in {S3RVER_DIR}: run `make install` (npm ci from the committed lock)"
        )
    argv = [find_node(), str(S3RVER_DIR / "server.js"), "--address", settings.store_host]
    argv += ["--port", str(settings.store_port), "--directory", str(directory), "--bucket", settings.store_bucket]
    return [*argv, "--verbose"] if verbose else argv


def storage_engine(settings: BrokerSettings) -> str:
    """Tansu's ``--storage-engine`` URL for these settings."""
    return f"s3://{settings.store_bucket}/" if settings.storage == "s3" else "memory://tansu/"


def tansu_environment(settings: BrokerSettings) -> dict[str, str]:
    """Variables Tansu's S3 client reads (the ``object_store`` crate's ``AWS_*``); empty for memory."""
    if settings.storage != "s3":
        return {}
    return {
        "AWS_ENDPOINT": settings.store_endpoint(),
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": settings.store_access_key,
        "AWS_SECRET_ACCESS_KEY": settings.store_secret_key.get_secret_value(),
        "AWS_DEFAULT_REGION": settings.store_region,
        "AWS_REGION": settings.store_region,
    }


def s3_client(settings: BrokerSettings, **config: Any) -> Any:
    """A boto3 S3 client of the broker's object store (path-style addressing, as s3rver serves)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.store_endpoint(),
        aws_access_key_id=settings.store_access_key,
        aws_secret_access_key=settings.store_secret_key.get_secret_value(),
        region_name=settings.store_region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}, **config),
    )
