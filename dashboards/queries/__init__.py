"""Every query the dashboards run, one module per page, cached with TTLs that suit each page.

`client` holds the warehouse client, the query cache and the tenant-scoped read path they all go
through; `probe` the HTTP status probes; the other modules are named after the page (or, for
`controls`, the sidebar) that runs them. Pages read aggregates and rollups only; the one query
over raw events is `search.search_events`.
"""
