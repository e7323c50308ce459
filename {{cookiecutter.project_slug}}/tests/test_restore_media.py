"""make restore's media step (manage.py restore_media): staged beside the live files, swapped in by renames,
and an archive that breaks tarfile's "data" rules stops before anything changed."""

import io
import sys
import tarfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from pytest_django import Settings


def archive(*members: tuple[str, bytes | None, str | None]) -> bytes:
    """A tar.gz of (name, content, symlink target) members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content, target in members:
            info = tarfile.TarInfo(name)
            if target is not None:
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            elif content is not None:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def restore_media(monkeypatch: pytest.MonkeyPatch, step: str, data: bytes = b"") -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    call_command("restore_media", step)


@pytest.fixture
def media(settings: Settings) -> Path:
    root = Path(settings.MEDIA_ROOT)
    (root / "documents").mkdir(parents=True)
    (root / "documents/live.txt").write_text("live")
    return root


def test_a_backup_s_media_replace_the_live_ones_only_when_swapped(media: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    restore_media(monkeypatch, "stage", archive(("./documents/restored.txt", b"restored", None)))
    assert (media / "documents/live.txt").read_text() == "live", "staging must not touch the live files"
    restore_media(monkeypatch, "swap")
    restore_media(monkeypatch, "finish")
    assert sorted(str(p.relative_to(media)) for p in media.rglob("*")) == ["documents", "documents/restored.txt"]
    assert (media / "documents/restored.txt").read_text() == "restored"


@pytest.mark.parametrize(
    "member",
    [("./link", None, "/etc/hostname"), ("../outside.txt", b"x", None)],
    ids=["absolute-symlink", "parent-path"],
)
def test_an_archive_that_breaks_the_rules_changes_nothing(
    media: Path, monkeypatch: pytest.MonkeyPatch, member: tuple[str, bytes | None, str | None]
) -> None:
    with pytest.raises(CommandError, match="could not be unpacked .*: the media were not changed"):
        restore_media(monkeypatch, "stage", archive(("./documents/restored.txt", b"restored", None), member))
    assert sorted(str(p.relative_to(media)) for p in media.rglob("*")) == ["documents", "documents/live.txt"]
    with pytest.raises(CommandError, match="nothing is staged"):
        restore_media(monkeypatch, "swap")


def test_a_truncated_archive_changes_nothing_and_discard_cleans_up(
    media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = archive(("./documents/restored.txt", b"restored" * 1000, None))
    with pytest.raises(CommandError, match="could not be unpacked"):
        restore_media(monkeypatch, "stage", data[: len(data) // 2])
    assert (media / "documents/live.txt").read_text() == "live" and not (media / ".restoring").exists()
    restore_media(monkeypatch, "stage", data)
    restore_media(monkeypatch, "discard")
    assert not (media / ".restoring").exists() and (media / "documents/live.txt").read_text() == "live"


def tree(media: Path) -> dict[str, str]:
    return {str(p.relative_to(media)): p.read_text() for p in media.rglob("*") if p.is_file()}


def test_a_swap_that_fails_half_way_is_undone(media: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rename that fails (a directory the app's user may not move, say) after others went through: the
    media are the live ones again, none deleted, and the staged ones stay staged."""
    (media / "other.txt").write_text("other")
    restore_media(monkeypatch, "stage", archive(("./documents/restored.txt", b"restored", None)))
    rename = Path.rename

    def refuse_other(self: Path, target: Path) -> Path:
        if self.name == "other.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", refuse_other)
    with pytest.raises(CommandError, match="could not be swapped in .*: the media were not changed"):
        restore_media(monkeypatch, "swap")
    monkeypatch.setattr(Path, "rename", rename)
    assert tree(media) == {
        "documents/live.txt": "live",
        "other.txt": "other",
        ".restoring/documents/restored.txt": "restored",
    }


def test_revert_brings_the_live_media_back_and_finish_drops_them(media: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = archive(("./documents/restored.txt", b"restored", None))
    restore_media(monkeypatch, "stage", data)
    restore_media(monkeypatch, "swap")
    assert tree(media) == {"documents/restored.txt": "restored", ".replaced/documents/live.txt": "live"}
    restore_media(monkeypatch, "revert")  # the database restore failed
    assert tree(media) == {"documents/live.txt": "live"}
    restore_media(monkeypatch, "stage", data)
    restore_media(monkeypatch, "swap")
    restore_media(monkeypatch, "finish")  # the database restore succeeded
    assert tree(media) == {"documents/restored.txt": "restored"}
