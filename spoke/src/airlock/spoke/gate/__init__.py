"""The validation gate: a model version must do at this site what the hub signed it
would (run on its signed validation set with onnxruntime, compatible with this site's
runtime).

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.node.runtime import SiteRuntime, max_supported_opset

__all__ = [
    "SiteRuntime",
    "max_supported_opset",
]
