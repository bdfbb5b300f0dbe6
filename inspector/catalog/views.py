"""The Models page: the catalog for everyone; for admins, a form that adds a Hugging Face id
or a local folder (its progress pushed over the page's websocket, polled without one) and a
Remove button on each model added here. Thin views over inspector.catalog.services."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from inspector.accounts import access
from inspector.catalog import services as catalog
from inspector.errors import ServiceError, page_refusal
from inspector.models import Job

MODELS = "inspector/models.html"


def _page(request: HttpRequest, status: int = 200, **context) -> HttpResponse:
    context = {
        "models": catalog.catalog_entries(request),
        "adding": catalog.adding(request),
        "may_manage": access.may_manage_models(access.user_of(request)),
        "page_id": access.new_page_id(request),
        **context,
    }
    return render(request, MODELS, context, status=status)


@require_GET
def models_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


@require_POST
def add_model(request: HttpRequest) -> HttpResponse:
    reference = request.POST.get("reference", "")
    page_id = request.POST.get("page_id", "")
    try:
        entry = catalog.add(
            request,
            reference,
            # Progress is pushed only to a page this session opened (see access.new_page_id).
            page_id=page_id if access.owns_page(request.session, page_id) else None,
        )
    except ServiceError as error:
        if error.status == 403:
            raise PermissionDenied(error.message) from None
        if request.htmx:
            context = {"error": error, "reference": reference, "page_id": page_id}
            return render(request, f"{MODELS}#add-form", context, status=422)
        return _page(request, error.status, error=error, reference=reference)
    if request.htmx:
        return render(request, f"{MODELS}#add-status", {"job": entry.job})
    return redirect("model-job", job_id=entry.job_id)


def _get_add_job(request: HttpRequest, job_id) -> Job:
    """An add_model job this admin started (404 for anyone else)."""
    if not access.may_manage_models(access.user_of(request)):
        raise Http404("No such job")
    job = Job.objects.filter(
        pk=job_id, kind=Job.Kind.ADD_MODEL, session_key=access.principal(request)
    ).first()
    if job is None:
        raise Http404("No such job")
    return job


@require_GET
def add_job(request: HttpRequest, job_id) -> HttpResponse:
    job = _get_add_job(request, job_id)
    if request.htmx:
        return render(request, f"{MODELS}#add-status", {"job": job})
    return _page(request, job=job)


@require_POST
def remove_model(request: HttpRequest, key: str) -> HttpResponse:
    try:
        catalog.remove(request, catalog.get_added(request, key))
    except ServiceError as error:
        if error.status in (403, 404):
            raise page_refusal(error) from None
        messages.error(request, error.message)
    else:
        messages.success(request, f"Removed {key} from the catalog")
    return redirect("models")
