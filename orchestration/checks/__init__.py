"""Asset checks on the stream's output: freshness, dead-letter and late rates, gaps."""
