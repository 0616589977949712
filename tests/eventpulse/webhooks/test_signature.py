"""The delivery signature: HMAC-SHA256 over "<t>." + body, in constant time, within the tolerance."""

import hashlib
import hmac

import pytest

from eventpulse.webhooks.signature import Refused, Verified, sign, verify

SECRET = "whsec_test_secret_0123456789"
BODY = b'{"id": "evt_1"}'


def test_the_header_is_stripes_shape_and_verifies() -> None:
    header = sign(SECRET, 1_700_000_000, BODY)
    digest = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={digest}"
    assert verify(header, BODY, SECRET, 1_700_000_100, 300) == Verified(1_700_000_000, digest)


def test_one_matching_entry_of_several_is_enough() -> None:
    good = sign(SECRET, 100, BODY).split(",")[1]
    other = sign("another-secret-0000000", 100, BODY).split(",")[1]
    assert isinstance(verify(f"t=100, {other}, {good}", BODY, SECRET, 100, 300), Verified)


@pytest.mark.parametrize(
    ("header", "body", "now", "error"),
    [
        (None, BODY, 100, "missing_signature"),
        ("", BODY, 100, "missing_signature"),
        ("v1=abc", BODY, 100, "invalid_signature"),  # no timestamp
        ("t=100", BODY, 100, "invalid_signature"),  # no digest
        (sign(SECRET, 100, BODY), BODY + b" ", 100, "invalid_signature"),  # the body changed
        (sign(SECRET, 100, BODY).replace("t=100", "t=101"), BODY, 100, "invalid_signature"),  # the time changed
        (sign("wrong-secret-00000000000", 100, BODY), BODY, 100, "invalid_signature"),
        (sign(SECRET, 100, BODY), BODY, 401, "stale_timestamp"),  # too old
        (sign(SECRET, 1000, BODY), BODY, 699, "stale_timestamp"),  # from the future
    ],
)
def test_refusals(header: str | None, body: bytes, now: float, error: str) -> None:
    refused = verify(header, body, SECRET, now, 300)
    assert isinstance(refused, Refused) and refused.error == error


def test_the_tolerance_is_inclusive() -> None:
    assert isinstance(verify(sign(SECRET, 100, BODY), BODY, SECRET, 400, 300), Verified)
