"""Settings sections, one module per area; `eventpulse.settings.Settings` assembles them."""
