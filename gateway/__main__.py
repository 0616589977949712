"""``python -m gateway [--host H] [--port P] [--workers N]``: serve the gateway with uvicorn.

uvicorn with uvloop and httptools was the fastest server for this app on these machines (see
``gateway/README.md``). Settings come from ``EVENTPULSE_*``; the flags override host, port and
workers. Read deadlines and the connection limit are `gateway.server`'s. Ready when
``GET /api/health/ready`` answers 200.
"""

from __future__ import annotations

import argparse

import uvicorn

from eventpulse.settings import Settings
from gateway.logs import configure_logging
from gateway.server import uvicorn_options


def main(argv: list[str] | None = None) -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=settings.gateway.host)
    parser.add_argument("--port", type=int, default=settings.gateway.port)
    parser.add_argument("--workers", type=int, default=settings.gateway.workers)
    args = parser.parse_args(argv)
    configure_logging(settings.gateway.log_level)
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        lifespan="on",
        access_log=False,
        proxy_headers=settings.gateway.proxy_headers,
        forwarded_allow_ips=settings.gateway.forwarded_allow_ips,
        server_header=False,  # "server: uvicorn" tells a client nothing it needs; one header less per answer
        log_config=None,
        timeout_graceful_shutdown=15,
        **uvicorn_options(settings.gateway),  # httptools with read deadlines, connection limit, keep-alive
    )


if __name__ == "__main__":
    main()
