"""The gateway fixtures, for CLI tests that drive a real gateway."""

from tests.gateway.conftest import gateway, make_key, start_gateway  # noqa: F401
