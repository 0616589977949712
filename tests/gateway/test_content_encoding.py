"""Compressed bodies decoded within bounds: every coding round-trips, bombs and corrupt bodies are refused."""

import gzip
import zlib

import pytest
import zstandard

from gateway.content_encoding import EncodingRefused, coding_of, decompress

RAW = b'[{"type":"a","source":"b","timestamp":1}]' * 200
LIMIT = 1 << 20


def compress(coding: str, data: bytes) -> bytes:
    match coding:
        case "gzip":
            return gzip.compress(data)
        case "zstd":
            return zstandard.ZstdCompressor().compress(data)
        case "deflate":
            return zlib.compress(data)
        case "raw-deflate":
            packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            return packer.compress(data) + packer.flush()
    raise AssertionError(coding)


@pytest.mark.parametrize("coding", ["gzip", "zstd", "deflate", "raw-deflate"])
def test_each_coding_round_trips(coding: str) -> None:
    name = "deflate" if coding == "raw-deflate" else coding
    assert decompress(compress(coding, RAW), name, LIMIT, 1000) == RAW


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_concatenated_members_and_frames_are_all_read(coding: str) -> None:
    assert decompress(compress(coding, RAW) + compress(coding, b"tail"), coding, LIMIT, 1000) == RAW + b"tail"


@pytest.mark.parametrize("coding", ["gzip", "zstd", "deflate"])
def test_a_truncated_body_is_refused_as_malformed(coding: str) -> None:
    with pytest.raises(EncodingRefused) as refused:
        decompress(compress(coding, RAW)[:-6], coding, LIMIT, 1000)
    assert (refused.value.status, refused.value.error) == (400, "malformed_body")


@pytest.mark.parametrize("coding", ["gzip", "zstd", "deflate"])
def test_garbage_is_refused_as_malformed(coding: str) -> None:
    with pytest.raises(EncodingRefused) as refused:
        decompress(b"\x00not compressed at all", coding, LIMIT, 1000)
    assert refused.value.status == 400


@pytest.mark.parametrize("coding", ["gzip", "zstd", "deflate"])
def test_a_bomb_stops_at_the_byte_limit(coding: str) -> None:
    bomb = compress(coding, b"\0" * (200 * LIMIT))  # 200 MB from a few hundred KB at most
    with pytest.raises(EncodingRefused) as refused:
        decompress(bomb, coding, LIMIT, 10**9)
    assert (refused.value.status, refused.value.error) == (413, "payload_too_large")
    assert f"more than {LIMIT} bytes" in refused.value.detail
    assert len(refused.value.prefix) <= LIMIT  # never more than the bound is kept


def test_a_zstd_bomb_without_a_declared_size_stops_at_the_limit_too() -> None:
    bomb = zstandard.ZstdCompressor(write_content_size=False).compress(b"\0" * (200 * LIMIT))
    with pytest.raises(EncodingRefused) as refused:
        decompress(bomb, "zstd", LIMIT, 10**9)
    assert refused.value.status == 413 and len(refused.value.prefix) == LIMIT


@pytest.mark.parametrize("coding", ["gzip", "zstd", "deflate"])
def test_the_ratio_bound_refuses_below_the_byte_limit(coding: str) -> None:
    body = compress(coding, b"\0" * 100_000)
    with pytest.raises(EncodingRefused) as refused:
        decompress(body, coding, LIMIT, 10)
    assert refused.value.status == 413 and "more than 10 times" in refused.value.detail
    assert decompress(body, coding, LIMIT, 100_000) == b"\0" * 100_000  # a looser bound lets it through


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        (None, None),
        (b"identity", None),
        (b"GZIP", "gzip"),
        (b"x-gzip", "gzip"),
        (b" zstd ", "zstd"),
        (b"deflate", "deflate"),
    ],
)
def test_coding_names(header: bytes | None, coding: str | None) -> None:
    assert coding_of(header) == coding


@pytest.mark.parametrize("header", [b"br", b"gzip, zstd", b"compress"])
def test_other_codings_are_refused_with_415(header: bytes) -> None:
    with pytest.raises(EncodingRefused) as refused:
        coding_of(header)
    assert refused.value.status == 415
