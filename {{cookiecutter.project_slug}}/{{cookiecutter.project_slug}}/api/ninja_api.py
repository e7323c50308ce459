"""The API, with Django Ninja: /api/documents/ (list, upload, change, delete), /api/me/ (the caller's own profile),
the OpenAPI 3 schema at /api/schema/ and Swagger UI at /api/docs/ (README "The API")."""

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from allauth.headless.contrib.ninja.security import XSessionTokenAuth
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import get_object_or_404
from django.urls import path
from ninja import File, Form, NinjaAPI, Schema, Status, UploadedFile
from ninja.errors import HttpError
from ninja.openapi.schema import OpenAPISchema
from ninja.pagination import PageNumberPagination, paginate
from ninja.security import SessionAuth
from ninja.throttling import AnonRateThrottle, UserRateThrottle
from pydantic import BaseModel, Field

from users.limits import client_ip
from users.models import User

from ..models import Document
from .errors import completed_schema

ERROR = {
    "type": "object",
    "description": 'An error: {"detail": "..."}, or a list of what is wrong with the input.',
    "properties": {"detail": {}},
}


class DocumentsAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: Any = None) -> OpenAPISchema:
        """What the schema cannot say otherwise (completed_schema)."""
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        completed_schema(schema, ERROR)
        return schema


class SessionToken(XSessionTokenAuth):
    """allauth's session token, named in the schema (Swagger UI and generated clients send it)."""

    openapi_in = "header"
    openapi_name = "X-Session-Token"


class SiteSession(SessionAuth):
    """This site's session cookie, with the CSRF check on changes. A call without the cookie is not checked for
    CSRF (Ninja would answer "CSRF check Failed"): it is a 401 unless its token is good."""

    def __call__(self, request: HttpRequest) -> Any:
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return None
        return super().__call__(request)


class AnonThrottle(AnonRateThrottle):
    """API_THROTTLE_ANON per visitor: the address nginx reports (CLIENT_IP_HEADER), not nginx's own."""

    def get_ident(self, request: HttpRequest) -> str:
        return client_ip(request)


class UserThrottle(UserRateThrottle):
    """API_THROTTLE_USER per signed-in user; anonymous calls are AnonThrottle's alone."""

    def allow_request(self, request: HttpRequest) -> bool:
        if not request.user.is_authenticated:
            return True
        return bool(super().allow_request(request))


anon_throttle = AnonThrottle(settings.API_THROTTLE_ANON)


def visitors_throttled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The schema and the docs are open to anyone: API_THROTTLE_ANON per visitor on them too."""

    @wraps(view)
    def throttled(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated and not anon_throttle.allow_request(request):
            response = JsonResponse({"detail": "Request was throttled."}, status=429)
            response["Retry-After"] = str(int(anon_throttle.wait() or 1))
            return response
        return view(request, *args, **kwargs)

    return throttled


api = DocumentsAPI(
    title={{ (cookiecutter.project_name ~ " API") | tojson }},
    version="1",
    # allauth's session token (X-Session-Token, from its headless login), or this site's session with CSRF.
    auth=[SessionToken(), SiteSession()],
    throttle=[anon_throttle, UserThrottle(settings.API_THROTTLE_USER)],
    docs_decorator=visitors_throttled,
    urls_namespace="api",
    openapi_url="/schema/",
    docs_url="/docs/",
)


@api.exception_handler(MultiPartParserError)
def unreadable_form(request: HttpRequest, error: MultiPartParserError) -> HttpResponse:
    """A form Django cannot read (no boundary, a broken part) is the client's error, not a 500."""
    return api.create_response(request, {"detail": f"Cannot read the form: {error}"}, status=400)


class Pages(PageNumberPagination):
    class Input(Schema):
        # A page past the database's reach is a 422, not an error from the database.
        page: int = Field(1, ge=1, le=1_000_000)
        page_size: int | None = Field(None, ge=1, le=100)


class DocumentOut(Schema):
    id: int
    title: str
    file: str
    uploaded_at: datetime
    owner: int | None

    @staticmethod
    def resolve_file(document: Document) -> str:
        return document.file.url

    @staticmethod
    def resolve_owner(document: Document) -> int | None:
        return document.owner_id


class Changes(BaseModel):
    """A JSON object of changes: pydantic's own model, since Ninja's schemas read the attributes of anything (a
    list would pass as no change at all)."""


# Text without the NUL character, which PostgreSQL cannot store (a 500 otherwise).
NO_NUL = r"^[^\x00]*$"


class DocumentIn(Schema):
    title: str = Field(min_length=1, max_length=200, pattern=NO_NUL)


class DocumentChange(Changes):
    title: str | None = Field(None, min_length=1, max_length=200, pattern=NO_NUL)


class ProfileOut(Schema):
    id: int
    email: str
    first_name: str
    last_name: str
    is_staff: bool
{%- if cookiecutter.username_type == "username" %}
    username: str
{%- endif %}


class ProfileChange(Changes):
    first_name: str | None = Field(None, max_length=150, pattern=NO_NUL)
    last_name: str | None = Field(None, max_length=150, pattern=NO_NUL)


def account(request: HttpRequest) -> User:
    """The signed-in user of an operation that needs one (the API's auth let the request in)."""
    if not isinstance(request.user, User):
        raise HttpError(401, "Authentication credentials were not provided.")
    return request.user


def writable(request: HttpRequest, pk: int) -> Document:
    """The document, if its owner or staff asks: others get a 403."""
    document = get_object_or_404(Document, pk=pk)
    user = request.user
    if not (user.is_staff or document.owner_id == user.pk):
        raise HttpError(403, "You do not have permission to perform this action.")
    return document


def saved(document: Document) -> Document:
    """Checked by the model's validators (ALLOWED_EXTENSIONS, as in the admin; nginx limits the size for both)."""
    try:
        document.full_clean()
    except ValidationError as error:
        raise HttpError(400, "; ".join(f"{field}: {' '.join(m)}" for field, m in error.message_dict.items())) from None
    document.save()
    return document


@api.get("/documents/", response=list[DocumentOut], tags=["documents"])
@paginate(Pages, page_size=settings.API_PAGE_SIZE)
def list_documents(request: HttpRequest) -> Any:
    return Document.objects.order_by("-uploaded_at", "-id")


@api.post("/documents/", response={201: DocumentOut}, tags=["documents"])
def create_document(request: HttpRequest, data: Form[DocumentIn], file: File[UploadedFile]) -> Status[Any]:
    return Status(201, saved(Document(title=data.title, file=file, owner=account(request))))


@api.get("/documents/{int:pk}/", response=DocumentOut, tags=["documents"])
def get_document(request: HttpRequest, pk: int) -> Document:
    return get_object_or_404(Document, pk=pk)


@api.patch("/documents/{int:pk}/", response=DocumentOut, tags=["documents"])
def change_document(request: HttpRequest, pk: int, data: DocumentChange) -> Document:
    document = writable(request, pk)
    if data.title is not None:
        document.title = data.title
    return saved(document)


@api.delete("/documents/{int:pk}/", response={204: None}, tags=["documents"])
def delete_document(request: HttpRequest, pk: int) -> Status[Any]:
    writable(request, pk).delete()
    return Status(204, None)


@api.get("/me/", response=ProfileOut, tags=["me"])
def profile(request: HttpRequest) -> Any:
    return request.user


@api.patch("/me/", response=ProfileOut, tags=["me"])
def change_profile(request: HttpRequest, data: ProfileChange) -> Any:
    user = account(request)
    changes = data.model_dump(exclude_none=True)
    for name, value in changes.items():
        setattr(user, name, value)
    if changes:
        user.save(update_fields=[*changes])
    return user


urlpatterns = [path("", api.urls)]
