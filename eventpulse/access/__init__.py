"""Who may read and write what: warehouse users and their grants, and tenant-scoped reads.

Modules: `credentials` (the warehouse users file: generated once, 0600), `declaration` (users,
roles, grants, quotas and row policies declared once, rendered as ClickHouse SQL for
``eventpulse access apply``), `statements` (classifying ClickHouse SQL with sqlglot), `scoped_sql`
(the one read path: free SQL rewritten to the caller's tenants, or refused).
"""
