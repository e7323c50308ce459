"""Accounts (django-allauth): every user made before it (by the admin or createsuperuser, the only ways in then)
gets their address as a verified, primary EmailAddress, so mandatory verification does not lock them out. A
project that upgrades through cruft gets this with `migrate`; on a new project there is nobody to do."""

from typing import Any

from django.db import migrations


def add_addresses(apps: Any, schema_editor: Any) -> None:
    User = apps.get_model("users", "User")
    EmailAddress = apps.get_model("account", "EmailAddress")
    taken = {address.lower() for address in EmailAddress.objects.values_list("email", flat=True)}
    for user in User.objects.exclude(email="").order_by("pk").iterator():
        address = user.email.lower()
        if address in taken or EmailAddress.objects.filter(user=user).exists():
            continue  # two users with one address (possible by username): the first keeps it
        # Lower-case, as allauth stores and looks up every address.
        EmailAddress.objects.create(user=user, email=address, verified=True, primary=True)
        taken.add(address)


class Migration(migrations.Migration):
    dependencies = [
        ("users", "{{ '0002_email_key' if cookiecutter.username_type == 'email' else '0001_initial' }}"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [migrations.RunPython(add_addresses, migrations.RunPython.noop)]
