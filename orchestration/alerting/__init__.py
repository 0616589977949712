"""Alert rules (YAML), their evaluation in SQL, webhook delivery and the `alerts` table."""
