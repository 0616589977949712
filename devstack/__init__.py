"""Local stand-ins and tooling, never imported by a component (gateway, flows, orchestration, dashboards).

`warehouse_server` (chDB behind ClickHouse's HTTP interface), `broker` (Tansu), `traffic` (synthetic
events), and the stack behind `eventpulse up`: `stack_services` composes the services, `supervisor` runs
them, `process`/`watchdog` stop whole process groups, `ports` probes them, `metrics` records restarts.
"""
