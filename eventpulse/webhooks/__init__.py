"""Inbound webhooks: per-source signing secrets (encrypted), per-source mappings from a third party's JSON
to an event, the signature scheme, and the ``webhook_sources`` table the gateway reads."""
