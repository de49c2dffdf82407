"""``airlock hub report fleet``: the fleet report (placeholder)."""
