{%- if cookiecutter.username_type == "email" -%}
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower


class UserManager(BaseUserManager):
    """Users are created and found by email address; there is no username."""

    use_in_migrations = True

    def create_user(self, email, password=None, **extra_fields):
        if not email:
            raise ValueError("A user needs an email address.")
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        user = self.model(email=self.normalize_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        if extra_fields["is_staff"] is not True or extra_fields["is_superuser"] is not True:
            raise ValueError("A superuser needs is_staff=True and is_superuser=True.")
        return self.create_user(email, password, **extra_fields)

    def get_by_natural_key(self, email):
        # Logging in as Ada@Example.com finds ada@example.com.
        return self.get(email__iexact=email)


class User(AbstractUser):
    """The project's user from the first migration: signs in with an email address."""

    username = None
    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []

    objects = UserManager()

    class Meta(AbstractUser.Meta):
        constraints = [
            # A login ignores case (get_by_natural_key), so Ada@example.com and ada@example.com are one account.
            models.UniqueConstraint(
                Lower("email"),
                name="users_user_email_unique_ignoring_case",
                violation_error_message="A user with this email address already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.email
{%- else -%}
from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """The project's user from the first migration (so fields can be added later without a painful swap):
    signs in with a username."""
{%- endif %}
