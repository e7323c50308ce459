"""Uploads in S3-compatible object storage (media_storage=s3; README "Media in object storage").

The bucket serves the files itself, so what nginx does for /media/ on a volume is done here, on each object: a raster
image is stored with its own type and shown inline; anything else is stored as application/octet-stream with
Content-Disposition: attachment, so a browser downloads it and never runs it. The type the uploader's browser claimed
(django-storages' default, and a text/html claim for a .txt would be served as a page) is never used.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from storages.backends.s3 import S3Storage

# Shown inline, with these types: raster images only (as nginx's $media_disposition for a volume). Not SVG: it runs
# script.
INLINE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
}
DOWNLOAD_TYPE = "application/octet-stream"


def served_as(name: str) -> dict[str, str]:
    """The Content-Type and Content-Disposition a file of this name is stored (and served) with."""
    inline = INLINE_TYPES.get(PurePosixPath(name).suffix.lower())
    if inline:
        return {"ContentType": inline, "ContentDisposition": "inline"}
    return {"ContentType": DOWNLOAD_TYPE, "ContentDisposition": "attachment"}


class MediaStorage(S3Storage):
    """django-storages' S3 backend with the type and disposition chosen from the name, never from the upload."""

    def get_object_parameters(self, name: str) -> dict[str, Any]:
        # Stored on the object: what the bucket answers for any request, signed by us or not.
        parameters: dict[str, Any] = super().get_object_parameters(name)
        return {**parameters, **served_as(name)}

    def url(
        self,
        name: str,
        parameters: dict[str, Any] | None = None,
        expire: int | None = None,
        http_method: str | None = None,
    ) -> str:
        # And in each signed URL (response-content-type, -disposition): objects written before, or by another tool,
        # are served the same way.
        served = served_as(name)
        override = {f"Response{header}": value for header, value in served.items()}
        url: str = super().url(name, {**override, **(parameters or {})}, expire, http_method)
        return url
