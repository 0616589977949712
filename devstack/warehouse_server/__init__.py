"""The local warehouse server: chDB (the ClickHouse engine, on disk) behind ClickHouse's HTTP interface.

Only one process may open a chDB path, so this server owns it and every component connects to it
with an ordinary ClickHouse client (``clickhouse_connect.get_client(host=..., port=8123)``).
Run it with ``eventpulse warehouse serve`` or ``python -m devstack.warehouse_server``.

Modules: `engine` (chDB connections and per-request state), `pool` (which connection a request
uses), `protocol` (reading requests), `sql` (finding an INSERT's inline data), `codecs` (HTTP
compression), `responses` (headers and error bodies), `app` (the ASGI app), `serve` (the runner),
`command` (the click command behind `eventpulse warehouse serve`).
"""

from devstack.warehouse_server.serve import build_app, serve

__all__ = ["build_app", "serve"]
