"""The Parquet archive of raw events: storage layout, files, checksums, manifests."""
