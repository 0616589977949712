"""Fixtures of the gateway tests, for the traffic sender test that drives a real gateway."""

from tests.gateway.conftest import gateway, make_key, start_gateway  # noqa: F401
