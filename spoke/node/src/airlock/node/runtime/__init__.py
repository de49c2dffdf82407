"""This machine's ONNX runtime and how a model runs on it: the runtime's facts (version,
providers, architecture, memory, opsets), compatibility of a signed model with them, and
the measurements on a model's signed validation set that the spoke's validation gate and
the node's health check both take.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.node.runtime._compat import NOT_SIGNED, REPORT_HINT, check_compatibility, refuse
from airlock.node.runtime._run import Measurement, measure, open_session, runtime_version
from airlock.node.runtime._runtime import SiteRuntime, max_supported_opset, site_runtime

__all__ = [
    "NOT_SIGNED",
    "REPORT_HINT",
    "Measurement",
    "SiteRuntime",
    "check_compatibility",
    "max_supported_opset",
    "measure",
    "open_session",
    "refuse",
    "runtime_version",
    "site_runtime",
]
