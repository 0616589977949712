"""HTTP content codings: request bodies in, response bodies out.

clickhouse-connect compresses an insert body block by block: with ``lz4`` (its default) each
block is a whole LZ4 *frame*, with ``zstd`` a whole zstd frame, so a body is several frames
back to back and every one must be decoded. Responses are compressed as one stream (one frame)
because clickhouse-connect's response readers stop at the end of the first lz4/zstd frame.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import lz4.frame
import zstandard

from devstack.warehouse_server.errors import CANNOT_DECOMPRESS, UNKNOWN_COMPRESSION_METHOD, ClickHouseError

try:  # optional, as in ClickHouse clients
    import brotli  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None


class Decoder(Protocol):
    def decode(self, data: bytes) -> bytes: ...

    def finish(self) -> None:
        """Raise if the body ended in the middle of a compressed frame."""


class _Identity:
    def decode(self, data: bytes) -> bytes:
        return data

    def finish(self) -> None:
        return None


class _Lz4Frames:
    """Concatenated LZ4 frames (python-lz4's decompressor stops after one frame)."""

    def __init__(self) -> None:
        self._frame = lz4.frame.LZ4FrameDecompressor()
        self._started = False

    def decode(self, data: bytes) -> bytes:
        out = []
        while data:
            self._started = True
            out.append(self._frame.decompress(data))
            if not self._frame.eof:
                break
            data = self._frame.unused_data
            self._frame = lz4.frame.LZ4FrameDecompressor()
            self._started = False
        return b"".join(out)

    def finish(self) -> None:
        if self._started:
            raise ClickHouseError(CANNOT_DECOMPRESS, "The lz4 request body ends inside a frame")


class _Zstd:
    def __init__(self) -> None:
        self._obj = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)

    def decode(self, data: bytes) -> bytes:
        return self._obj.decompress(data)

    def finish(self) -> None:
        return None


class _Zlib:
    """gzip (possibly several members) or zlib-wrapped deflate."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._obj = zlib.decompressobj(wbits)

    def decode(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._obj.decompress(data))
            if not self._obj.eof:
                break
            data = self._obj.unused_data
            self._obj = zlib.decompressobj(self._wbits)
        return b"".join(out)

    def finish(self) -> None:
        return None


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def decode(self, data: bytes) -> bytes:
        return self._obj.process(data)

    def finish(self) -> None:
        return None


def decoder_for(content_encoding: str | None) -> Decoder:
    """The decoder of a request's ``Content-Encoding``."""
    name = (content_encoding or "").strip().lower()
    try:
        if name in ("", "identity", "none"):
            return _Identity()
        if name == "lz4":
            return _Lz4Frames()
        if name in ("zstd", "zst"):
            return _Zstd()
        if name in ("gzip", "x-gzip"):
            return _Zlib(16 + zlib.MAX_WBITS)
        if name == "deflate":
            return _Zlib(zlib.MAX_WBITS)
        if name == "br" and brotli is not None:
            return _Brotli()
    except Exception as exc:  # pragma: no cover - constructor failures are environment problems
        raise ClickHouseError(CANNOT_DECOMPRESS, str(exc)) from exc
    raise ClickHouseError(UNKNOWN_COMPRESSION_METHOD, f"Unknown Content-Encoding: {content_encoding}")


def decode_all(content_encoding: str | None, data: bytes) -> bytes:
    """Decode a whole body at once."""
    decoder = decoder_for(content_encoding)
    try:
        out = decoder.decode(data)
        decoder.finish()
    except ClickHouseError:
        raise
    except Exception as exc:
        raise ClickHouseError(CANNOT_DECOMPRESS, f"Cannot decode the {content_encoding} body: {exc}") from exc
    return out


class Encoder(Protocol):
    name: str

    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Lz4Encoder:
    name = "lz4"

    def __init__(self) -> None:
        self._obj = lz4.frame.LZ4FrameCompressor()
        self._header = self._obj.begin()

    def compress(self, data: bytes) -> bytes:
        out = self._header + self._obj.compress(data)
        self._header = b""
        return out

    def flush(self) -> bytes:
        out = self._header + self._obj.flush()
        self._header = b""
        return out


class _ZstdEncoder:
    name = "zstd"

    def __init__(self) -> None:
        self._obj = zstandard.ZstdCompressor(level=1).compressobj()

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush()


class _ZlibEncoder:
    def __init__(self, name: str, wbits: int) -> None:
        self.name = name
        self._obj = zlib.compressobj(level=3, wbits=wbits)

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush()


class _BrotliEncoder:
    name = "br"

    def __init__(self) -> None:
        self._obj = brotli.Compressor(quality=3)

    def compress(self, data: bytes) -> bytes:
        return self._obj.process(data)

    def flush(self) -> bytes:
        return self._obj.finish()


def _make_encoder(name: str) -> Encoder:
    if name == "lz4":
        return _Lz4Encoder()
    if name == "zstd":
        return _ZstdEncoder()
    if name == "gzip":
        return _ZlibEncoder("gzip", 16 + zlib.MAX_WBITS)
    if name == "deflate":
        return _ZlibEncoder("deflate", zlib.MAX_WBITS)
    return _BrotliEncoder()


RESPONSE_CODINGS: tuple[str, ...] = ("lz4", "zstd", "gzip", "deflate", *(("br",) if brotli else ()))


def negotiate(accept_encoding: str | None) -> str | None:
    """The first coding of ``Accept-Encoding`` (in the client's order) that the server speaks."""
    for item in (accept_encoding or "").split(","):
        name, _, params = item.strip().lower().partition(";")
        if params.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        if name in RESPONSE_CODINGS:
            return name
    return None


def encoder_for(name: str | None) -> Encoder | None:
    """A fresh response encoder for a negotiated coding (``None``: send identity)."""
    return _make_encoder(name) if name else None
