"""Tiny helpers for answering raw ASGI requests (the ingest routes skip the framework for speed)."""

from __future__ import annotations

from typing import Any

import msgspec

Headers = list[tuple[bytes, bytes]]

_JSON = (b"content-type", b"application/json")
_encode = msgspec.json.Encoder().encode


class BodyTooLarge(Exception):
    """The body exceeds the limit: ``size`` bytes (declared by Content-Length, or at least read so far),
    ``prefix`` its first bytes when the caller asked to keep them (for the dead-letter row)."""

    def __init__(self, size: int, declared: bool, prefix: bytes = b"") -> None:
        super().__init__(size)
        self.size = size
        self.declared = declared
        self.prefix = prefix


class ClientDisconnected(Exception):
    """The client went away (or was closed by a read deadline) before its body arrived."""


def header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def read_body(receive: Any, limit: int, content_length: bytes | None, keep_prefix: bool = False) -> bytes:
    """The whole request body; raises `BodyTooLarge` as soon as it exceeds ``limit`` bytes.

    With ``keep_prefix`` a body declared too large is still read up to the limit (and one chunk
    more), so the error can keep what was sent; otherwise a too large Content-Length is refused
    unread. A disconnect before the body is complete raises `ClientDisconnected` (never a truncated
    body that would pass for the client's).
    """
    declared = int(content_length) if content_length is not None and content_length.isdigit() else -1
    if declared > limit and not keep_prefix:
        raise BodyTooLarge(declared, True)
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge(declared if declared > limit else len(body), declared > limit, body[:limit])
        if not body and message["type"] != "http.request":
            raise ClientDisconnected
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > limit:
            raise BodyTooLarge(declared if declared > limit else size, declared > limit, b"".join(chunks)[:limit])
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
