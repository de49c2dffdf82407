"""The node agent (distribution ``airlock-node``): verifies, installs, health-checks and
serves the models its spoke assigns, and reports back signed. It installs without the
site service: nothing here imports ``airlock.spoke``.

Modules here are private (``_name.py``); other components import the names below.

Every name here is imported on first use (:mod:`airlock.bundles.lazy`): the spoke
imports ``airlock.node.runtime`` for its validation gate, and importing that
subpackage must not load the agent's HTTP client and inference server.
"""

from typing import TYPE_CHECKING

from airlock.bundles.lazy import lazy_exports

if TYPE_CHECKING:
    from airlock.node._agent import Agent
    from airlock.node._cli import agent, make_verifier
    from airlock.node._client import NodeClient, SignedFetcher
    from airlock.node._health import (
        check_node_compatibility,
        health_check,
        open_model,
        unmet_dependency,
    )
    from airlock.node._home import LOG_FILE, PASSPHRASE_ENV, SIGNING_KEY_FILE, AgentHome
    from airlock.node._inference import (
        FaultSpec,
        InferenceFailedError,
        LoadedModel,
        NotServingError,
        Predictor,
        Route,
    )
    from airlock.node._predict_server import create_app
    from airlock.node._recorder import Recorder
    from airlock.node._slots import FAILED, INSTALLED, FamilySlots, SlotRecord, SlotStore
    from airlock.node._verify import NodeVerifier, VerifiedAssignment, VerifiedFile

__all__ = [
    "FAILED",
    "INSTALLED",
    "LOG_FILE",
    "PASSPHRASE_ENV",
    "SIGNING_KEY_FILE",
    "Agent",
    "AgentHome",
    "FamilySlots",
    "FaultSpec",
    "InferenceFailedError",
    "LoadedModel",
    "NodeClient",
    "NodeVerifier",
    "NotServingError",
    "Predictor",
    "Recorder",
    "Route",
    "SignedFetcher",
    "SlotRecord",
    "SlotStore",
    "VerifiedAssignment",
    "VerifiedFile",
    "agent",
    "check_node_compatibility",
    "create_app",
    "health_check",
    "make_verifier",
    "open_model",
    "unmet_dependency",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Agent": "_agent",
        "AgentHome": "_home",
        "FAILED": "_slots",
        "FamilySlots": "_slots",
        "FaultSpec": "_inference",
        "INSTALLED": "_slots",
        "InferenceFailedError": "_inference",
        "LOG_FILE": "_home",
        "LoadedModel": "_inference",
        "NodeClient": "_client",
        "NodeVerifier": "_verify",
        "NotServingError": "_inference",
        "PASSPHRASE_ENV": "_home",
        "Predictor": "_inference",
        "Recorder": "_recorder",
        "Route": "_inference",
        "SIGNING_KEY_FILE": "_home",
        "SignedFetcher": "_client",
        "SlotRecord": "_slots",
        "SlotStore": "_slots",
        "VerifiedAssignment": "_verify",
        "VerifiedFile": "_verify",
        "agent": "_cli",
        "check_node_compatibility": "_health",
        "create_app": "_predict_server",
        "health_check": "_health",
        "make_verifier": "_cli",
        "open_model": "_health",
        "unmet_dependency": "_health",
    },
)
