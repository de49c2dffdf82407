"""The validation gate: a model version must do at this site what the hub signed it
would (run on its signed validation set with onnxruntime, compatible with this site's
runtime).

The runtime's facts and the measurements themselves are the node's
(:mod:`airlock.node.runtime`): a node's health check takes the same ones.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.spoke.gate._gate import GateReport, gate_bundle

__all__ = [
    "GateReport",
    "gate_bundle",
]
