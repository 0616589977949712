"""``python -m devstack.broker [--host H] [--port P] [--partitions N]``: ``eventpulse broker serve``."""

from cli.broker import serve

if __name__ == "__main__":
    serve(prog_name="python -m devstack.broker")
