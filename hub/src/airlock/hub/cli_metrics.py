"""``airlock hub import-metrics``: metrics bundles from sites (placeholder)."""
