"""Pages for moving explorations in and out: the JSON and CSV downloads, the import form and
forking an exploration one may read (a copy through the file format).
The work is in inspector.transfer.services; the API (inspector.transfer.api) calls the same
functions."""

from __future__ import annotations

import json

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from inspector.errors import ServiceError, page_refusal
from inspector.explorations import services as explorations
from inspector.explorations.forms import ExplorationForm
from inspector.transfer import services as transfer

IMPORT_FORM = "inspector/partials/import_form.html"
LIST = "inspector/explorations.html"


class ImportForm(forms.Form):
    """An exploration file; cleaning gives its JSON content (size and syntax checked)."""

    file = forms.FileField(
        label="Exploration file (.json)",
        error_messages={
            "required": "Choose a .json file exported from TokenLens",
            "empty": "The file is empty",
        },
    )

    def clean_file(self):
        try:
            return transfer.read_upload(self.cleaned_data["file"])
        except ServiceError as error:
            raise forms.ValidationError(error.message) from None


def download(body: str, filename: str, content_type: str) -> HttpResponse:
    """A response the browser saves as `filename` (shared with the API)."""
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


def json_download(exploration) -> HttpResponse:
    body = json.dumps(transfer.export_exploration(exploration), ensure_ascii=False, indent=1)
    return download(body, transfer.export_filename(exploration, "json"), "application/json")


def csv_download(branch) -> HttpResponse:
    filename = transfer.export_filename(branch.exploration, "csv", part=f"{branch.label} steps")
    return download(transfer.steps_csv(branch), filename, "text/csv")


def _viewable(lookup, request: HttpRequest, object_id):
    """The exploration or branch if the request may view it; 404 for everyone else."""
    try:
        return lookup(request, object_id, need="view")
    except ServiceError as error:
        raise Http404(error.message) from None


@require_GET
def exploration_export(request: HttpRequest, exploration_id) -> HttpResponse:
    return json_download(_viewable(explorations.get_exploration, request, exploration_id))


@require_GET
def branch_steps_csv(request: HttpRequest, branch_id) -> HttpResponse:
    return csv_download(_viewable(explorations.get_branch, request, branch_id))


@require_POST
def exploration_import(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            exploration = transfer.import_exploration(form.cleaned_data["file"], request)
        except ServiceError as error:
            form.add_error("file", _located(error))
        else:
            url = reverse("exploration", args=[exploration.pk])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return _import_refused(request, " ".join(form.errors.get("file", [])))


def _located(error: ServiceError) -> str:
    """The message, with where in the file the problem is when it is in one place."""
    if error.field in ("file", "non_field_errors"):
        return error.message
    return f"{error.message} (at {error.field})"


def _import_refused(request: HttpRequest, message: str) -> HttpResponse:
    """The import form again with the reason: the fragment for htmx, else the whole list page."""
    if request.htmx:
        return render(request, IMPORT_FORM, {"import_error": message}, status=422)
    context = {
        "form": ExplorationForm(),
        "explorations": explorations.explorations_for(request),
        "import_error": message,
    }
    return render(request, LIST, context, status=400)


@require_POST
def exploration_fork(request: HttpRequest, exploration_id) -> HttpResponse:
    """Copy an exploration one may read (shared, in a lesson) into one's own workspace."""
    try:
        exploration = explorations.get_exploration(request, exploration_id, "fork")
    except ServiceError as error:
        raise page_refusal(error) from None
    copy = transfer.copy_exploration(exploration, request)
    url = reverse("exploration", args=[copy.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
