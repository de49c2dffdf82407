"""Airlock shared core: typed models, TUF and key helpers, bundle format, verification, audit log.

Every other Airlock component (ceremony, hub, spoke) depends on this one and
never on each other.
"""

__version__ = "0.1.0"
