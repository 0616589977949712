from tests.gateway.conftest import gateway, start_gateway  # noqa: F401
