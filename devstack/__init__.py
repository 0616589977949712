"""The local stack: `eventpulse up` composes services; `supervisor` runs them; `ports` probes them."""
