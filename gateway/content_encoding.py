"""Compressed request bodies (``Content-Encoding: gzip | zstd | deflate``), decompressed with bounds.

A compressed body is read up to the route's byte limit like any other, then decompressed to at most
``limit`` bytes *and* at most ``max_ratio`` times its compressed size, whichever is smaller: a
decompression bomb (a few KB that expand to gigabytes) stops at the bound, costs at most that much
memory and CPU, and is refused (413, dead-lettered by the caller). Output is produced incrementally
(zlib's ``max_length``, zstandard's bounded ``stream_reader``), never all at once.

``deflate`` is the zlib format RFC 9110 names; raw deflate (what some clients send) is accepted too.
``gzip`` bodies may hold several members (``cat a.gz b.gz``), as RFC 1952 allows.
One coding per request: a list (``gzip, zstd``) is refused with 415, like an unknown coding.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import zstandard

SUPPORTED = ("gzip", "zstd", "deflate")
ACCEPT_ENCODING = (b"accept-encoding", b", ".join(c.encode() for c in SUPPORTED))
"""Sent with a 415 for an unsupported coding (RFC 9110 section 15.5.16)."""


@dataclass(frozen=True, slots=True)
class EncodingRefused(Exception):
    """The body cannot be used: HTTP ``status`` with ``error`` and ``detail``; ``prefix`` is what
    decompressed before the refusal (for the dead letter)."""

    status: int
    error: str
    detail: str
    prefix: bytes = b""


def coding_of(value: bytes | None) -> str | None:
    """The body's coding from the Content-Encoding header (None: not compressed).

    Raises `EncodingRefused` (415) for a coding this gateway does not decode.
    """
    if value is None:
        return None
    coding = value.decode("latin-1").strip().lower()
    if coding in ("", "identity"):
        return None
    if coding == "x-gzip":
        return "gzip"
    if coding not in SUPPORTED:
        detail = f"Content-Encoding {coding!r} is not supported; send one of: {', '.join(SUPPORTED)} (or none)"
        raise EncodingRefused(415, "unsupported_content_encoding", detail)
    return coding


def decompress(body: bytes, coding: str, limit: int, max_ratio: int) -> bytes:
    """``body`` decoded from ``coding``; raises `EncodingRefused` (413 when it would exceed ``limit``
    bytes or ``max_ratio`` × its size, 400 when it is corrupt or truncated)."""
    bound = min(limit, max(len(body), 1) * max_ratio)
    try:
        out = _zstd(body, bound) if coding == "zstd" else _zlib(body, coding, bound)
    except (zlib.error, zstandard.ZstdError) as exc:
        raise EncodingRefused(400, "malformed_body", f"the {coding} body does not decompress: {exc}") from None
    except _TooLarge as exc:
        raise _refusal(coding, len(body), limit, max_ratio, bound, exc.out) from None
    if len(out) > bound:
        raise _refusal(coding, len(body), limit, max_ratio, bound, out)
    return bytes(out)


def _refusal(coding: str, size: int, limit: int, max_ratio: int, bound: int, out: bytearray) -> EncodingRefused:
    """413 for a body that decompresses past ``bound`` (``out``: what decompressed before the refusal)."""
    if bound == limit:
        detail = f"the {coding} body decompresses to more than {limit} bytes, the limit"
    else:
        detail = f"the {coding} body decompresses to more than {max_ratio} times its {size} bytes"
    return EncodingRefused(413, "payload_too_large", detail, bytes(out[:bound]))


class _TooLarge(Exception):
    """A zstd frame declares more than the bound: ``out`` is what decompressed before it."""

    def __init__(self, out: bytearray) -> None:
        super().__init__()
        self.out = out


def _zlib(body: bytes, coding: str, bound: int) -> bytearray:
    """gzip (every member) or deflate (zlib or raw), at most ``bound + 1`` bytes of output."""
    if coding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    else:  # a zlib header: CM = 8 and the header checksum (RFC 1950); otherwise raw deflate
        zlib_header = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
        wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
    out = bytearray()
    data = body
    while data:
        stream = zlib.decompressobj(wbits)
        out += stream.decompress(data, bound + 1 - len(out))
        if len(out) > bound:
            return out
        if not stream.eof:
            raise zlib.error("the stream is truncated")
        data = stream.unused_data
        if coding != "gzip" and data:
            raise zlib.error(f"{len(data)} bytes after the end of the stream")
    return out


_ZSTD_FEED = 256
"""Compressed bytes given to zstd at a time: a zstd block of 4 bytes can hold 128 KB (an RLE block), so
one feed yields at most ~8 MB before the bound is checked again."""


def _zstd(body: bytes, bound: int) -> bytearray:
    """Every zstd frame of ``body``, stopping once past ``bound`` bytes of output."""
    if not body:
        raise zstandard.ZstdError("the body is empty")
    out = bytearray()
    data = body
    while data:
        declared = zstandard.frame_content_size(data)  # -1 when the frame does not say
        if declared > bound - len(out):  # the frame says it is too large: refused before decompressing
            raise _TooLarge(out)
        stream = zstandard.ZstdDecompressor().decompressobj()
        for at in range(0, len(data), _ZSTD_FEED):
            out += stream.decompress(data[at : at + _ZSTD_FEED])
            if len(out) > bound or stream.eof:
                break
        if len(out) > bound:
            return out
        if not stream.eof:
            raise zstandard.ZstdError("the stream is truncated")
        data = stream.unused_data
    return out
