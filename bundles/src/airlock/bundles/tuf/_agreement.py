"""Director and Image agree: a target a site is told to have is the one the Image
repository signs (same length, hashes, model, version and file)."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Protocol

from tuf.api.metadata import TargetFile

from airlock.bundles.errors import (
    IntegrityError,
    TrustError,
)
from airlock.bundles.tuf._errors import translate_error
from airlock.bundles.tuf._repo import (
    CUSTOM_KEY,
    IMAGE,
    sha256_of_target,
)


@dataclass(frozen=True)
class VerifiedTarget:
    """A model file this site is told to have, verified in both repositories."""

    path: str
    model: str
    version: str
    filename: str
    sha256: str
    length: int
    primary: bool
    image_custom: dict[str, Any]
    kind: str = "model"
    director_custom: dict[str, Any] = dataclass_field(default_factory=dict)
    """The Director target's ``custom.airlock`` (site, and the rollout plan on the primary)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "path": self.path,
            "model": self.model,
            "version": self.version,
            "filename": self.filename,
            "sha256": self.sha256,
            "length": self.length,
            "primary": self.primary,
            "kind": self.kind,
        }


def target_custom(target: TargetFile) -> dict[str, Any]:
    """A target's ``custom.airlock`` dict ({} when absent or not a dict)."""
    custom = target.custom.get(CUSTOM_KEY) if isinstance(target.custom, dict) else None
    return dict(custom) if isinstance(custom, dict) else {}


class TargetLookup(Protocol):
    """Anything that finds an Image target through delegations (an ngclient ``Updater``)."""

    def get_targetinfo(self, target_path: str) -> TargetFile | None:
        """The verified target at ``target_path``, or None."""


def agree_with_image(
    path: str, director: TargetFile, image_updater: TargetLookup
) -> VerifiedTarget:
    """Checks that a Director (or site-director) target agrees with the Image repository.

    Args:
        path: The target path.
        director: The target as the Director's verified metadata lists it.
        image_updater: A refreshed Image Updater, or the node's Image client
            (delegations are walked on demand).

    Returns:
        The file as the Image repository signs it.

    Raises:
        TrustError: the Image repository does not sign ``path`` (never released, or revoked).
        IntegrityError: length, hashes or model/version/file fields differ.
    """
    try:
        image = image_updater.get_targetinfo(path)
    except Exception as exc:
        raise translate_error(exc, IMAGE) from None
    if image is None:
        raise TrustError(
            f"Director assigns {path}, which the Image repository does not sign",
            hint="the model was never released by the hub or has been revoked; do not install it",
        )
    if director.length != image.length or director.hashes != image.hashes:
        raise IntegrityError(
            f"Director and Image disagree on {path}: length or hashes differ",
            hint=(
                "the hub's repositories are inconsistent or were tampered with; "
                "report it to the hub"
            ),
        )
    d_custom, i_custom = target_custom(director), target_custom(image)
    for field in ("model", "version", "file"):
        if d_custom.get(field) != i_custom.get(field):
            raise IntegrityError(
                f"Director and Image disagree on the {field} of {path}",
                hint="the hub's repositories are inconsistent or were tampered with; "
                "report it to the hub",
            )
    return VerifiedTarget(
        path=path,
        model=str(i_custom.get("model")),
        version=str(i_custom.get("version")),
        filename=str(i_custom.get("file")),
        sha256=sha256_of_target(image),
        length=image.length,
        primary=bool(i_custom.get("primary", False)),
        image_custom=i_custom,
        kind=str(i_custom.get("kind", "model")),
        director_custom=d_custom,
    )
