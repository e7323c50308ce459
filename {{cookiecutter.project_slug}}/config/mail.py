"""The email backend of a live site that has no EMAIL_URL: a mail it tries to send is an error that names
the missing variable, never a mail silently dropped (error reports to ADMINS included: the error is logged)."""

from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.base import BaseEmailBackend


class UnconfiguredEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise ImproperlyConfigured(
            "EMAIL_URL is not set, so this mail cannot be sent: set it in .envs/prod.env (see the README's Email)."
        )
