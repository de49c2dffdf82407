"""Change requests: the ITSM model and its rules, ServiceNow imports, and the audited
change desk functions (create, approve, move, …) that gate rollouts.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.hub.changes._desk import (
    add_change_approver,
    approve_change,
    create_change,
    get_change,
    import_servicenow,
    list_change_approvers,
    list_change_requests,
    move_change,
    reject_change,
)
from airlock.hub.changes._records import ChangeRequest

__all__ = [
    "ChangeRequest",
    "add_change_approver",
    "approve_change",
    "create_change",
    "get_change",
    "import_servicenow",
    "list_change_approvers",
    "list_change_requests",
    "move_change",
    "reject_change",
]
