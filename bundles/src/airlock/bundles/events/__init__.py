"""Events for change-management systems: CloudEvents written through a transactional
outbox, and their at-least-once delivery to a file and a webhook.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.events._delivery import deliver, deliver_best_effort
from airlock.bundles.events._outbox import EVENT_TYPES, OutboxEvent, emit, source_of
from airlock.bundles.events._settings import CONTENT_TYPE, SIGNATURE_HEADER, load_settings

__all__ = [
    "CONTENT_TYPE",
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "OutboxEvent",
    "deliver",
    "deliver_best_effort",
    "emit",
    "load_settings",
    "source_of",
]
