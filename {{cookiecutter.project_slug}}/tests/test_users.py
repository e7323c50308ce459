import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from users.models import User

from .factories import PASSWORD, UserFactory

{% if cookiecutter.username_type == "email" -%}
LOGIN = {"email": "ada@example.com"}
{%- else -%}
LOGIN = {"username": "ada", "email": "ada@example.com"}
{%- endif %}


def test_the_project_uses_its_own_user_model() -> None:
    assert get_user_model() is User
    assert User._meta.app_label == "users"
    assert User.USERNAME_FIELD == "{{ cookiecutter.username_type }}"


@pytest.mark.django_db
def test_a_user_signs_in_through_the_login_form(client: Client) -> None:
    # The site's login (allauth's), the admin's too: /admin/login/ sends there (tests/test_accounts.py).
    UserFactory.create(**LOGIN, is_staff=True)
    response = client.post(
        "/accounts/login/", {"login": LOGIN[User.USERNAME_FIELD], "password": PASSWORD, "next": "/admin/"}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    client.logout()
    wrong = client.post("/accounts/login/", {"login": LOGIN[User.USERNAME_FIELD], "password": "wrong"})
    assert wrong.status_code == 200  # the form again


@pytest.mark.django_db
def test_createsuperuser_makes_an_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", "--noinput", *(f"--{field}={value}" for field, value in LOGIN.items()))
    admin = User.objects.get(email="ada@example.com")
    assert admin.is_superuser and admin.is_staff and admin.check_password(PASSWORD)
{%- if cookiecutter.username_type == "email" %}


@pytest.mark.django_db
def test_the_email_address_is_the_login_and_is_unique() -> None:
    assert "username" not in {field.name for field in User._meta.get_fields()}
    User.objects.create_user(email="ada@Example.COM", password=PASSWORD)
    # The domain is stored lower-case, and a login in another case finds the same user.
    assert User.objects.get_by_natural_key("ADA@example.com").email == "ada@example.com"
    with pytest.raises(ValueError, match="email address"):
        User.objects.create_user(email="", password=PASSWORD)


@pytest.mark.django_db
def test_an_address_in_another_case_is_the_same_account(admin_client: Client) -> None:
    from django.db import IntegrityError

    # Logins ignore case, so a second account for Ada@example.com would make ada@example.com's login ambiguous.
    UserFactory.create(email="ada@example.com")
    form = {"email": "Ada@example.com", "usable_password": "true", "password1": PASSWORD, "password2": PASSWORD}
    refused = admin_client.post("/admin/users/user/add/", {**form, "_save": "Save"})
    assert refused.status_code == 200 and "A user with this email address already exists." in refused.text
    with pytest.raises(IntegrityError):
        User.objects.create_user(email="Ada@example.com", password=PASSWORD)


# Addresses that differ only in characters a login treats as one: a second account for one of them would make
# both logins ambiguous (on PostgreSQL a 500), so each pair is one account, whichever way it is created.
LOOK_ALIKES = {
    "long s": ("Sam@example.com", "\u017fam@example.com"),  # ſ upper-cases to S
    "Kelvin sign": ("kelvin@example.com", "\u212aelvin@example.com"),  # K lower-cases to k
    "sharp s": ("ada@strasse.example", "ada@stra\u00dfe.example"),  # ß case-folds to ss
}


@pytest.mark.django_db
@pytest.mark.parametrize("first, second", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_a_look_alike_address_is_one_account(
    admin_client: Client, client: Client, monkeypatch: pytest.MonkeyPatch, first: str, second: str
) -> None:
    from django.core.exceptions import ValidationError
    from django.core.management import CommandError
    from django.db import IntegrityError, transaction

    ada = UserFactory.create(email=first, is_staff=True)
    form = {"email": second, "usable_password": "true", "password1": PASSWORD, "password2": PASSWORD}
    refused = admin_client.post("/admin/users/user/add/", {**form, "_save": "Save"})
    assert refused.status_code == 200, refused.headers
    assert "A user with this email address already exists." in refused.text, refused.context["adminform"].form.errors
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    with pytest.raises(CommandError, match="already taken"):
        call_command("createsuperuser", "--noinput", f"--email={second}")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(email=second, password=PASSWORD)
    assert list(User.objects.filter(is_superuser=False)) == [ada]
    # Nor can another account change its address to one (what the admin's change form checks).
    grace = UserFactory.create(email="grace@example.com")
    grace.email = second
    with pytest.raises(ValidationError) as changed:
        grace.full_clean()
    assert changed.value.message_dict["email"] == ["A user with this email address already exists."]
    for login in (first, second, second.upper()):
        signed_in = client.post("/accounts/login/", {"login": login, "password": PASSWORD, "next": "/admin/"})
        assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/admin/", login
        client.logout()
{%- endif %}


@pytest.mark.django_db
def test_the_admin_lists_and_adds_users(admin_client: Client) -> None:
    UserFactory.create(**LOGIN)
    listing = admin_client.get("/admin/users/user/")
    assert listing.status_code == 200 and LOGIN[User.USERNAME_FIELD] in listing.text
    form = {
        "{{ cookiecutter.username_type }}": "{{ 'grace@example.com' if cookiecutter.username_type == 'email' else 'grace' }}",
        "usable_password": "true",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "_save": "Save",
    }
    added = admin_client.post("/admin/users/user/add/", form)
    assert added.status_code == 302, added.text[:2000]
    assert User.objects.filter(**{"{{ cookiecutter.username_type }}": form["{{ cookiecutter.username_type }}"]}).exists()
