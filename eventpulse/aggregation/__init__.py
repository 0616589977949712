"""The aggregation spec: metrics declared once, computed by the stream and by batch SQL."""
