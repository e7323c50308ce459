"""The API, with Django REST framework: /api/documents/ (list, upload, change, delete), /api/me/ (the caller's own
profile), the OpenAPI 3 schema at /api/schema/ and Swagger UI at /api/docs/ (README "The API")."""

import re
from typing import Any

from django.contrib.auth import get_user_model
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import QuerySet
from django.urls import include, path
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import generics, pagination, parsers, permissions, routers, serializers, viewsets
from rest_framework.request import Request
from rest_framework.views import APIView

from ..models import Document
from .errors import completed_schema

User = get_user_model()
NO_NUL = r"^[^\x00]*$"


class TextField(serializers.CharField):
    """Text only: REST framework's CharField takes 123 for "123", which the schema (a string) does not allow."""

    def __init__(self, **kwargs: Any) -> None:
        # Kept as sent: the schema's minLength counts spaces, so "  " is a title (the admin's form would refuse it).
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        # REST framework refuses the NUL character (PostgreSQL cannot store it): the schema says so too.
        self.validators.append(RegexValidator(NO_NUL, "Null characters are not allowed."))

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictModelSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping, models.CharField: TextField}


class DocumentSerializer(StrictModelSerializer):
    """The file is checked by the model's validators (ALLOWED_EXTENSIONS), as in the admin; nginx limits its size
    (client_max_body_size) for both."""

    class Meta:
        model = Document
        fields = ["id", "title", "file", "uploaded_at", "owner"]
        read_only_fields = ["uploaded_at", "owner"]


class DocumentChangeSerializer(DocumentSerializer):
    """A change is of the title: a new file is a new document."""

    class Meta(DocumentSerializer.Meta):
        read_only_fields = ["file", "uploaded_at", "owner"]


class ProfileSerializer(StrictModelSerializer):
    class Meta:
        model = User
        # The sign-in name and the address are changed where they are verified (the admin, the accounts pages).
        fields = list(dict.fromkeys(["id", User.USERNAME_FIELD, "email", "first_name", "last_name", "is_staff"]))
        read_only_fields = [name for name in fields if name not in ("first_name", "last_name")]


class Pages(pagination.PageNumberPagination):
    """Pages of API_PAGE_SIZE; a page that is not a whole number from 1 is refused (REST framework would serve
    page 1 for ?page= and the last page for ?page=last, which the schema does not offer)."""

    def get_page_number(self, request: Request, paginator: Any) -> int:
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if not re.fullmatch(r"[1-9][0-9]{0,8}", raw):
            raise serializers.ValidationError({self.page_query_param: ["A whole number from 1."]})
        return int(raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"].update(minimum=1, maximum=999_999_999)
        return parameters


class OwnerOrStaffWrites(permissions.BasePermission):
    """Every signed-in user reads every document (the home page lists them all); its owner or staff change it."""

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(request.user.is_staff or obj.owner_id == request.user.pk)


class DocumentViewSet(viewsets.ModelViewSet):  # type: ignore[type-arg]
    permission_classes = [permissions.IsAuthenticated, OwnerOrStaffWrites]
    pagination_class = Pages
    lookup_value_regex = r"\d+"

    def get_parsers(self) -> list[parsers.BaseParser]:
        # An upload is a file (multipart/form-data); a change, of the title, is JSON. (A body that is not a form
        # would pass as an empty one, and change nothing without a word.)
        if self.request is not None and self.request.method == "POST":
            return [parsers.MultiPartParser()]
        return [parsers.JSONParser()]

    def get_serializer_class(self) -> type[DocumentSerializer]:
        if self.request is not None and self.request.method in ("PUT", "PATCH"):
            return DocumentChangeSerializer
        return DocumentSerializer

    def get_queryset(self) -> QuerySet[Document]:
        return Document.objects.order_by("-uploaded_at", "-id")

    def perform_create(self, serializer: DocumentSerializer) -> None:  # type: ignore[override]
        serializer.save(owner=self.request.user)


class ProfileView(generics.RetrieveUpdateAPIView):  # type: ignore[type-arg]
    """The caller's own account."""

    serializer_class = ProfileSerializer
    parser_classes = [parsers.JSONParser]

    def get_object(self) -> Any:
        return self.request.user


class SessionTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The token in the schema, so Swagger UI and clients generated from it send it."""

    target_class = "{{ cookiecutter.project_slug }}.api.drf_auth.SessionTokenAuthentication"
    name = "sessionToken"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": "X-Session-Token"}


ERROR = {
    "type": "object",
    "description": 'An error: {"detail": "..."}, or a list of messages per field for invalid input.',
    "properties": {"detail": {"type": "string"}},
}


BLANK = {"type": "string", "maxLength": 0}


def blank_allowed_as_any_of(part: Any) -> None:
    """drf-spectacular writes a blank-allowed text field with a pattern as oneOf [the pattern, ""]; "" matches both
    (the pattern accepts it), which oneOf forbids, so a client validating a 200 with first_name "" fails. anyOf says
    what the field takes."""
    if isinstance(part, dict):
        if BLANK in part.get("oneOf", []):
            part["anyOf"] = part.pop("oneOf")
        for value in part.values():
            blank_allowed_as_any_of(value)
    elif isinstance(part, list):
        for value in part:
            blank_allowed_as_any_of(value)


def document_api(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular's postprocessing hook: what the schema cannot say otherwise (completed_schema)."""
    blank_allowed_as_any_of(result)
    return completed_schema(result, ERROR)


DOCS_PAGE = "{{ cookiecutter.project_slug }}/api_docs.html"
router = routers.SimpleRouter()
router.register("documents", DocumentViewSet, basename="document")

urlpatterns = [
    path("", include(router.urls)),
    path("me/", ProfileView.as_view(), name="profile"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Its page without drf-spectacular's inline <style>, which the CSP refuses; its script from a URL of its own.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema", template_name=DOCS_PAGE), name="docs"),
]
