"""``python -m devstack.broker [--host H] [--port P] [--partitions N]``: ``eventpulse broker serve``."""

from devstack.broker.command import serve

if __name__ == "__main__":
    serve(prog_name="python -m devstack.broker")
