"""Who calls the API (Django REST framework), read by REST_FRAMEWORK in config/settings.py: kept apart from
drf_api.py, which imports the views these settings configure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from allauth.headless.contrib.rest_framework.authentication import XSessionTokenAuthentication
from rest_framework import throttling
from rest_framework.request import Request

from users.limits import client_ip

if TYPE_CHECKING:  # rest_framework.views reads these settings as it loads
    from rest_framework.views import APIView


class SessionTokenAuthentication(XSessionTokenAuthentication):
    """allauth's session token (X-Session-Token), from its headless login. A token that is wrong or expired is a
    401, not a silent anonymous call; without one the answer is a 401 that names the header."""

    allow_invalid_session_tokens = False


class AnonThrottle(throttling.AnonRateThrottle):
    """API_THROTTLE_ANON per visitor: the address nginx reports (CLIENT_IP_HEADER), not nginx's own."""

    def get_ident(self, request: Request) -> str:
        return client_ip(request)


class UserThrottle(throttling.UserRateThrottle):
    """API_THROTTLE_USER per signed-in user."""

    def get_ident(self, request: Request) -> str:
        return client_ip(request)

    def allow_request(self, request: Request, view: APIView) -> bool:
        # Anonymous calls are AnonThrottle's alone (UserRateThrottle would count them a second time).
        if not (request.user and request.user.is_authenticated):
            return True
        return super().allow_request(request, view)
