{%- if cookiecutter.username_type == "email" -%}
from __future__ import annotations

import unicodedata
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.db import models

TAKEN = "A user with this email address already exists."


def email_key(address: str) -> str:
    """What logins and uniqueness compare: the address without case (case-folded, so ß is ss) and without
    compatibility look-alikes (NFKC: the Kelvin sign is K, the long s is s), as Django compares the addresses
    of a password reset. Python computes it, so every database (and every collation) agrees."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", address).casefold())


class UserManager(BaseUserManager["User"]):
    """Users are created and found by email address; there is no username."""

    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra_fields: Any) -> User:
        if not email:
            raise ValueError("A user needs an email address.")
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        user = self.model(email=self.normalize_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra_fields: Any) -> User:
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        if extra_fields["is_staff"] is not True or extra_fields["is_superuser"] is not True:
            raise ValueError("A superuser needs is_staff=True and is_superuser=True.")
        return self.create_user(email, password, **extra_fields)

    def get_by_natural_key(self, email: str | None) -> User:
        # Logging in as Ada@Example.com finds ada@example.com: the one account with that key (it is unique).
        return self.get(email_key=email_key(email or ""))


class User(AbstractUser):
    """The project's user from the first migration: signs in with an email address."""

    username = None  # type: ignore[assignment]  # no username: the email address signs in
    email = models.EmailField("email address", unique=True)
    # Kept by save() from email; unique, so no two accounts answer one login.
    email_key = models.TextField(unique=True, editable=False, error_messages={"unique": TAKEN})

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email_key = email_key(self.email)
        if (fields := kwargs.get("update_fields")) is not None and "email" in fields:
            kwargs["update_fields"] = {*fields, "email_key"}
        super().save(*args, **kwargs)

    def validate_unique(self, exclude: Any = None) -> None:
        # Forms leave email_key out (it is not editable): check it here as the email field's own error, so the
        # admin's add and change forms and createsuperuser refuse a look-alike instead of failing on the database.
        super().validate_unique({*(exclude or ()), "email_key"})
        if not self.email or "email" in (exclude or ()):
            return
        others = type(self)._default_manager.filter(email_key=email_key(self.email))
        if others.exclude(pk=self.pk).exists() if self.pk else others.exists():
            raise ValidationError({"email": ValidationError(TAKEN, code="unique")})

    def __str__(self) -> str:
        return self.email
{%- else -%}
from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """The project's user from the first migration (so fields can be added later without a painful swap):
    signs in with a username."""
{%- endif %}
