"""The orchestration resources fixture, for the coverage test's Dagster runs."""

from tests.orchestration.conftest import resources  # noqa: F401
