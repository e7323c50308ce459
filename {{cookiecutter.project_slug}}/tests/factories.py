"""Factories for the project's models (factory-boy): a test names what matters to it, the factory fills in the rest.

UserFactory.create() is a saved user with a unique {{ cookiecutter.username_type }} and PASSWORD, UserFactory.create(is_staff=True) one
with that field set, UserFactory.build() one not saved; DocumentFactory.create(title="Report") is a document with a
small text file, stored under MEDIA_ROOT.
"""

from factory.declarations import Sequence
from factory.django import DjangoModelFactory, FileField, Password

# A plain import for one of the two apps: ruff then sorts them the same whatever the project's name.
import users.models
from {{ cookiecutter.project_slug }}.models import Document

PASSWORD = "a-Long-password-9"


class UserFactory(DjangoModelFactory[users.models.User]):
    class Meta:
        model = users.models.User
        skip_postgeneration_save = True
{% if cookiecutter.username_type == "username" %}
    username = Sequence(lambda n: f"user{n}")
{%- endif %}
    email = Sequence(lambda n: f"user{n}@example.com")
    password = Password(PASSWORD)


class DocumentFactory(DjangoModelFactory[Document]):
    class Meta:
        model = Document

    title = Sequence(lambda n: f"Document {n}")
    file = FileField(filename="document.txt", data=b"A document made by DocumentFactory.\n")
