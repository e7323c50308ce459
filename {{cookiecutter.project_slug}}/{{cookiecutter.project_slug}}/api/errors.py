from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from ..models import ALLOWED_EXTENSIONS

# The API's own paths and allauth's headless ones (its login): their clients read JSON, never an HTML page.
PREFIXES = ("/api/", "/_allauth/")
KEPT_HEADERS = ("Retry-After", "WWW-Authenticate", "Allow")


class JsonErrorsMiddleware:
    """Every error under PREFIXES as JSON with its status: {"detail": "Not Found"} for a URL that does not exist,
    {"detail": "Internal Server Error"} in place of the debug page or the HTML 500 (Django has logged it and mailed
    ADMINS by then), a lockout page as JSON too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith(PREFIXES)
            and response.status_code >= 400
            and "json" not in response.get("Content-Type", "")
        ):
            replaced = JsonResponse({"detail": response.reason_phrase}, status=response.status_code)
            for header in KEPT_HEADERS:
                if header in response:
                    replaced[header] = response[header]
            return replaced
        return response


def completed_schema(schema: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI schema with what the frameworks leave out: every operation may answer an error (4xx) as JSON
    (`error`), and an upload's file part names a file with an allowed extension (a client, or a fuzzer, that reads
    the schema then sends one the model accepts)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = error
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation["responses"].setdefault(
                "4XX",
                {
                    "description": "An error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            )
            form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if form is not None:
                # An empty file is refused, as the admin's form does.
                file = resolved(schema, form["schema"])["properties"]["file"]
                file["minLength"] = 1
                # The allowed extensions are the name's (below), not a pattern of the file's content.
                file.pop("pattern", None)
                disposition = 'form-data; name="file"; filename="notes.txt"'
                allowed = ", ".join(ALLOWED_EXTENSIONS)
                form["encoding"] = {
                    "file": {
                        "headers": {
                            "Content-Disposition": {
                                "description": f"The file's name ends in one of: {allowed}.",
                                "schema": {"type": "string"},
                                "example": disposition,
                            }
                        }
                    }
                }
    return schema


def resolved(schema: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """A part of the schema, with its $ref (#/components/schemas/Name) followed."""
    if "$ref" in part:
        return schema["components"]["schemas"][part["$ref"].rsplit("/", 1)[-1]]  # type: ignore[no-any-return]
    return part
