"""The warehouse: client factory, migrator and migrations (the local server is `devstack.warehouse_server`)."""
