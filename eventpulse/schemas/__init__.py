"""The schema registry: JSON Schemas (draft 2020-12) of events' ``data`` per tenant and event type, with versions
and compatibility modes (`store`, `compat`), and the compiled view validation reads (`registry`)."""
