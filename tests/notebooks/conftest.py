from tests.dashboards.conftest import filled, sql  # noqa: F401  (the pipeline-filled database)
