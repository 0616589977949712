from eventpulse.cli.main import cli

cli()
