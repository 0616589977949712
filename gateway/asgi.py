"""Tiny helpers for answering raw ASGI requests (the ingest routes skip the framework for speed)."""

from __future__ import annotations

from typing import Any

import msgspec

Headers = list[tuple[bytes, bytes]]

_JSON = (b"content-type", b"application/json")
_encode = msgspec.json.Encoder().encode


class BodyTooLarge(Exception):
    pass


def header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def read_body(receive: Any, limit: int, content_length: bytes | None) -> bytes:
    """The whole request body; raises `BodyTooLarge` as soon as it exceeds ``limit`` bytes."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise BodyTooLarge
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def send_json(send: Any, status: int, payload: Any, headers: Headers | None = None) -> int:
    """Answer with ``payload`` (a msgspec struct or plain data) encoded as JSON; returns ``status``."""
    body = _encode(payload)
    out = [_JSON, (b"content-length", b"%d" % len(body))]
    if headers:
        out += headers
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})
    return status
