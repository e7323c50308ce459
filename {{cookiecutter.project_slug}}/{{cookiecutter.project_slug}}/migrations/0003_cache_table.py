"""The database cache's table, where settings.CACHES has one (a project without a key-value store): migrate then
creates it wherever it runs (make deploy, make release, the Kubernetes job), with no extra step to forget."""

from django.apps.registry import Apps
from django.core.management import call_command
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def create_cache_table(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("{{ cookiecutter.project_slug }}", "0002_document_file_extensions")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop, elidable=False)]
