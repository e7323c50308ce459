"""make restore's media step, in three parts, so a failure never leaves the media half replaced:

    manage.py restore_media stage    unpack a media archive (tar.gz on stdin) beside the live files
    manage.py restore_media swap     put the staged files in place of the live ones, which are kept aside
                                     (renames only; a rename that fails undoes the others)
    manage.py restore_media revert   put the live files kept aside back (the database restore failed)
    manage.py restore_media finish   delete the files kept aside (the restore succeeded)
    manage.py restore_media discard  remove what stage left (the restore stopped on the way)

The archive is unpacked with tarfile's "data" filter (no absolute paths, links out of the folder, devices
or setuid bits): one that breaks those rules stops at stage, before the database or the media changed.
"""

import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

STAGING = ".restoring"
REPLACED = ".replaced"  # the live files, from swap until finish (or revert)


class Command(BaseCommand):
    help = "Stage, swap in, revert, finish or discard the media of a backup being restored (make restore runs it)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("step", choices=["stage", "swap", "revert", "finish", "discard"])

    def handle(self, *args: Any, step: str, **options: Any) -> None:
        root = Path(settings.MEDIA_ROOT)
        staging = root / STAGING
        if step == "discard":
            shutil.rmtree(staging, ignore_errors=True)
        elif step == "stage":
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            try:
                with tarfile.open(fileobj=sys.stdin.buffer, mode="r|gz") as archive:
                    archive.extractall(staging, filter="data")
            except (tarfile.TarError, OSError, EOFError) as error:
                shutil.rmtree(staging, ignore_errors=True)
                raise CommandError(
                    f"the media archive could not be unpacked ({error}): the media were not changed"
                ) from error
            self.stdout.write(f"restore_media: staged {sum(1 for p in staging.rglob('*') if p.is_file())} files")
        elif step == "swap":
            swap(root, staging)
            self.stdout.write("restore_media: the backup's media are in place (the replaced ones kept until finish)")
        elif step == "revert":
            revert(root)
            self.stdout.write("restore_media: the live media are back")
        else:  # finish
            shutil.rmtree(root / REPLACED, ignore_errors=True)


def live_entries(root: Path) -> list[Path]:
    return sorted(entry for entry in root.iterdir() if entry.name not in (STAGING, REPLACED))


def remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()


def swap(root: Path, staging: Path) -> None:
    """The live entries into REPLACED, the staged ones into their place: renames only, undone on a failure (a
    directory the app's user may not move, say), so the media are either all the backup's or all as they were."""
    if not staging.is_dir():
        raise CommandError("nothing is staged: run restore_media stage first")
    replaced = root / REPLACED
    if replaced.exists() and any(replaced.iterdir()):
        raise CommandError(
            f"{replaced} holds the media an unfinished restore replaced: move them back into {root}, or delete them"
            " if the restore went through, then restore again. The media were not changed"
        )
    replaced.mkdir(exist_ok=True)
    moved: list[tuple[Path, Path]] = []
    try:
        for entry in live_entries(root):
            entry.rename(replaced / entry.name)
            moved.append((entry, replaced / entry.name))
        for entry in sorted(staging.iterdir()):
            entry.rename(root / entry.name)
            moved.append((entry, root / entry.name))
    except OSError as error:
        for source, target in reversed(moved):
            target.rename(source)
        replaced.rmdir()
        raise CommandError(f"the media could not be swapped in ({error}): the media were not changed") from error
    staging.rmdir()


def revert(root: Path) -> None:
    """The backup's entries out, the live ones that swap kept aside back in."""
    replaced = root / REPLACED
    if not replaced.is_dir():
        raise CommandError("nothing to revert: swap kept no media aside")
    for entry in live_entries(root):
        remove(entry)
    for entry in sorted(replaced.iterdir()):
        entry.rename(root / entry.name)
    replaced.rmdir()
