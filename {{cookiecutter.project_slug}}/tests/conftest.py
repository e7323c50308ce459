import pytest


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    """Uploads made by a test land in its own temporary folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
