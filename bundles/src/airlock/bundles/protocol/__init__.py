"""The node <-> spoke contracts: the signed HTTP protocol between a node agent and its
spoke (paths, request signatures, signed documents, version and metrics reports, the
node's identity and bootstrap files), and the site freshness statement the site director
signs and every node checks.

Modules here are private (``_name.py``); other components import the names below.
"""

from airlock.bundles.protocol._documents import (
    NODE_ID_FIELD,
    ROLES,
    AgentBootstrap,
    NodeIdentity,
    NodeModel,
    SignedDocument,
)
from airlock.bundles.protocol._freshness import (
    FRESHNESS_FILE,
    LIFETIME,
    ImageBinding,
    Statement,
    binding,
    parse_statement,
    sign_statement,
    verify_statement,
)
from airlock.bundles.protocol._reports import (
    HEALTH_CHECK,
    InstalledModel,
    MetricsReport,
    ModelVersionMetrics,
    Refusal,
    VersionReport,
)
from airlock.bundles.protocol._requests import (
    API_PREFIX,
    HEADER_NODE,
    IMAGE_PATH,
    MAX_SKEW,
    NODES_PATH,
    NonceCache,
    director_base,
    sign_request,
    verify_request,
)

__all__ = [
    "API_PREFIX",
    "FRESHNESS_FILE",
    "HEADER_NODE",
    "HEALTH_CHECK",
    "IMAGE_PATH",
    "LIFETIME",
    "MAX_SKEW",
    "NODES_PATH",
    "NODE_ID_FIELD",
    "ROLES",
    "AgentBootstrap",
    "ImageBinding",
    "InstalledModel",
    "MetricsReport",
    "ModelVersionMetrics",
    "NodeIdentity",
    "NodeModel",
    "NonceCache",
    "Refusal",
    "SignedDocument",
    "Statement",
    "VersionReport",
    "binding",
    "director_base",
    "parse_statement",
    "sign_request",
    "sign_statement",
    "verify_request",
    "verify_statement",
]
