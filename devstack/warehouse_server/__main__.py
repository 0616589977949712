"""``python -m devstack.warehouse_server [--host H] [--port P] [--path DIR]``: ``eventpulse warehouse serve``."""

from devstack.warehouse_server.command import serve

if __name__ == "__main__":
    serve(prog_name="python -m devstack.warehouse_server")
