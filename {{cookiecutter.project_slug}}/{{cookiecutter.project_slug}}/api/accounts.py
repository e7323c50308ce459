from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest


class NoSignupAdapter(DefaultAccountAdapter):
    """allauth's adapter without sign-up: accounts are made in the admin (the accounts feature replaces it)."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False
