"""``airlock spoke export-metrics`` (placeholder)."""
