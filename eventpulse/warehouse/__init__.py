"""The warehouse: client factory, migrations, and the local chDB server."""
