"""Airlock hub."""
