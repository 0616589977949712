"""Redis as the shared state store: client factories and what the components keep there."""
