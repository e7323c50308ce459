{% if cookiecutter.use_celery == "y" -%}
from celery.result import AsyncResult
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from .models import Document
from .tasks import count_documents
{%- else -%}
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .models import Document
{%- endif %}


def home(request: HttpRequest) -> HttpResponse:
    # Ten documents a page, newest first; ?page=2 and on for older ones (a missing or bad page: the nearest one).
    page = Paginator(Document.objects.order_by("-uploaded_at", "-pk"), 10).get_page(request.GET.get("page"))
    return render(
        request,
        "{{ cookiecutter.project_slug }}/home.html",
        {"documents": page.object_list, "document_count": page.paginator.count, "page": page},
    )
{% if cookiecutter.use_celery == "y" %}

# Staff only: anyone else could fill the queue, or read any task's result by its id.
@staff_member_required
@require_POST
def start_task(request: HttpRequest) -> HttpResponse:
    """Queue a background task; the worker picks it up."""
    result = count_documents.delay()
    return redirect("task_status", task_id=result.id)


@staff_member_required
def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    result: AsyncResult[object] = AsyncResult(task_id)
    payload: dict[str, object] = {"id": task_id, "state": result.state}
    if result.successful():
        payload["result"] = result.result
    return JsonResponse(payload)
{% endif -%}
