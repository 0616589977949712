"""`eventpulse warehouse`: the local warehouse server (chDB behind ClickHouse's HTTP interface)."""

from __future__ import annotations

import click

from devstack.warehouse_server.command import serve

warehouse = click.Group("warehouse", help="The warehouse: serve the local chDB warehouse over ClickHouse's HTTP API.")
warehouse.add_command(serve)
