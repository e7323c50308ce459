"""make restore's media step, in three parts, so a failure never leaves the media half replaced:

    manage.py restore_media stage    unpack a media archive (tar.gz on stdin) beside the live files
    manage.py restore_media swap     put the staged files in place of the live ones (renames only)
    manage.py restore_media discard  remove what stage left (the restore stopped on the way)

The archive is unpacked with tarfile's "data" filter (no absolute paths, links out of the folder, devices
or setuid bits): one that breaks those rules stops at stage, before the database or the media changed.
"""

import shutil
import sys
import tarfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

STAGING = ".restoring"


class Command(BaseCommand):
    help = "Stage, swap in or discard the media of a backup being restored (make restore runs it)."

    def add_arguments(self, parser):
        parser.add_argument("step", choices=["stage", "swap", "discard"])

    def handle(self, *args, step: str, **options) -> None:
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
        else:
            if not staging.is_dir():
                raise CommandError("nothing is staged: run restore_media stage first")
            for entry in root.iterdir():
                if entry == staging:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            for entry in staging.iterdir():
                entry.rename(root / entry.name)
            staging.rmdir()
            self.stdout.write("restore_media: the backup's media are in place")
