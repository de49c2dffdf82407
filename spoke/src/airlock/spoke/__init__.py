"""Airlock spoke."""
