"""One rule for logins and uniqueness: the address's key (users.models.email_key), stored and unique.

0001 made lower(email) unique while a login compared upper(email), so two addresses only those told apart (Sam@
and ſam@, the long s) could both have an account, and a login then failed with a server error. This migration
stores each account's key and makes it unique; it stops with the clashing addresses named, and changes nothing,
if two existing accounts share a key.
"""

from collections import defaultdict

from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

import users.models


def fill_keys(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    User = apps.get_model("users", "User")
    accounts: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)
    for pk, email in User.objects.using(schema_editor.connection.alias).values_list("pk", "email"):
        accounts[users.models.email_key(email)].append((pk, email))
    clashes = [found for found in accounts.values() if len(found) > 1]
    if clashes:
        listed = "; ".join(", ".join(f"{email!r} (id {pk})" for pk, email in found) for found in clashes)
        raise RuntimeError(
            f"These accounts have one email address once case and look-alike letters are ignored, so their logins "
            f"clash: {listed}. Give all but one of each another address, or delete them (in the users_user table, "
            "with `python manage.py dbshell`), then run migrate again. Nothing was changed."
        )
    for key, [(pk, _email)] in accounts.items():
        User.objects.using(schema_editor.connection.alias).filter(pk=pk).update(email_key=key)


class Migration(migrations.Migration):
    dependencies = [("users", "0001_initial")]

    operations = [
        migrations.AddField(model_name="user", name="email_key", field=models.TextField(editable=False, null=True)),
        migrations.RunPython(fill_keys, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="user",
            name="email_key",
            field=models.TextField(
                editable=False,
                error_messages={"unique": "A user with this email address already exists."},
                unique=True,
            ),
        ),
        # Replaced by the unique key: lower() alone let look-alikes through, and differs from one database to the next.
        migrations.RemoveConstraint(model_name="user", name="users_user_email_unique_ignoring_case"),
    ]
