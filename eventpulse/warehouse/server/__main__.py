"""``python -m eventpulse.warehouse.server [--host H] [--port P] [--path DIR]``: ``eventpulse warehouse serve``."""

from eventpulse.cli.warehouse import serve

if __name__ == "__main__":
    serve(prog_name="python -m eventpulse.warehouse.server")
