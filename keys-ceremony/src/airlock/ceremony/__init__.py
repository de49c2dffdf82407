"""Airlock offline key ceremonies."""
