"""`eventpulse`: the platform's command line. Each area's commands live in their own module."""

import importlib

import click

# (module, attribute) of every command group or command; a module is imported when the CLI
# starts, never when this module is imported.
_COMMANDS: tuple[tuple[str, str], ...] = (
    ("cli.migrate", "migrate"),
    ("cli.warehouse", "warehouse"),
    ("cli.broker", "broker"),
    ("cli.up", "up"),
    ("cli.traffic", "traffic"),
    ("cli.demo", "demo"),
    ("cli.keys", "keys"),
    ("cli.webhooks", "webhooks"),
    ("cli.alerts", "alerts"),
    ("cli.schemas", "schemas"),
    ("cli.audit", "audit"),
    ("cli.users", "users"),
    ("cli.access", "access"),
    ("cli.imports", "import_files"),
)


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._load())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load().get(cmd_name)

    def _load(self) -> dict[str, click.Command]:
        found: dict[str, click.Command] = {}
        for module, attribute in _COMMANDS:
            try:
                command = getattr(importlib.import_module(module), attribute)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
                continue
            found[command.name or attribute] = command
        return found


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """EventPulse: real-time event analytics (broker, warehouse, dataflow, gateway, Dagster, Streamlit)."""
