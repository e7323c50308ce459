"""Mail without EMAIL_URL on the live site: a mail it tries to send is an error that names the missing variable,
never a mail silently dropped. An error report to ADMINS that cannot be sent is logged instead of raised: it is
sent from inside a logging call, and an error while reporting an error must not crash the page that had it."""

import logging
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.utils.log import AdminEmailHandler
from django_stubs_ext import StrPromise

MISSING = "EMAIL_URL is not set, so this mail cannot be sent: set it in .envs/prod.env (see the README's Email)."
# Not under "django": that logger mails ADMINS, which would come back here.
logger = logging.getLogger("config.mail")


class UnconfiguredEmailBackend(BaseEmailBackend):
    """The live site's mailer while EMAIL_URL is unset."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if getattr(self, "fail_silently", False):
            logger.error("%s Not sent: %s", MISSING, ", ".join(repr(m.subject) for m in email_messages))
            return 0
        raise ImproperlyConfigured(MISSING)


class ReportingAdminEmailHandler(AdminEmailHandler):
    """Django's handler that mails ERROR records to ADMINS, with any failure to send logged, not raised (Django
    5.2 sends these with fail_silently; 6.1's MAILERS raise)."""

    def send_mail(self, subject: str | StrPromise, message: str | StrPromise, *args: Any, **kwargs: Any) -> None:
        try:
            super().send_mail(subject, message, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - whatever the mailer raised; the record itself is logged already
            logger.error("could not mail this error report to ADMINS: %s (%s)", subject, error)
