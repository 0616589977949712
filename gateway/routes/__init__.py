"""Starlette routes for everything off the hot path (health, metrics, OpenAPI, live stream)."""
