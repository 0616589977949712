from tests.gateway.conftest import gateway, make_key, start_gateway  # noqa: F401
