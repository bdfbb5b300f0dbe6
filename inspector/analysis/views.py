"""The tokens page (the home page): tokenize a text as a job whose result the page's websocket
receives, and the job's own page for browsers without JavaScript."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from inspector.accounts import access
from inspector.analysis.forms import TokenizeForm
from inspector.compute import services
from inspector.errors import ServiceError
from inspector.explorations.examples import EXAMPLES
from inspector.models import Job

HOME = "inspector/home.html"


def _session_key(request: HttpRequest) -> str:
    if not request.session.session_key:
        request.session.save()
    return request.session.session_key


def _get_job_for_session(request: HttpRequest, job_id) -> Job:
    try:
        return Job.objects.get(pk=job_id, session_key=_session_key(request))
    except Job.DoesNotExist:
        raise Http404("No such job in this browser session") from None


def _page(request: HttpRequest, form: TokenizeForm, job: Job | None = None, status: int = 200):
    page_id = form["page_id"].value()
    if not access.owns_page(request.session, page_id):
        page_id = access.new_page_id(request)
    context = {
        "form": form,
        "job": job,
        "page_id": page_id,
        "models": services.catalog_entries(),
        "examples": EXAMPLES.values(),
        "model_labels": [{"key": key, "label": label} for key, label in services.model_choices()],
    }
    return render(request, HOME, context, status=status)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    _session_key(request)
    return _page(request, TokenizeForm(initial={"page_id": access.new_page_id(request)}))


@require_POST
def tokenize(request: HttpRequest) -> HttpResponse:
    form = TokenizeForm(request.POST)
    if not form.is_valid():
        if request.htmx:
            return render(request, f"{HOME}#tokenize-form", {"form": form}, status=422)
        return _page(request, form, status=400)
    page_id = form.cleaned_data["page_id"]
    try:
        job = services.start_job(
            "tokenize",
            form.job_params(),
            # Results are pushed only to a page this session opened (see access.new_page_id).
            page_id=page_id if access.owns_page(request.session, page_id) else None,
            session_key=_session_key(request),
        )
    except ServiceError as error:  # no worker, over budget: say so on the form
        form.add_error(None, error.message)
        if request.htmx:
            return render(request, f"{HOME}#tokenize-form", {"form": form}, status=422)
        return _page(request, form, status=error.status)
    if request.htmx:
        return render(request, f"{HOME}#job-status", {"job": job})
    return redirect("job", job_id=job.pk)


@require_GET
def job_detail(request: HttpRequest, job_id) -> HttpResponse:
    job = _get_job_for_session(request, job_id)
    if request.htmx:
        return render(request, f"{HOME}#job-status", {"job": job})
    form = TokenizeForm(initial={**job.params, "page_id": access.new_page_id(request)})
    return _page(request, form, job=job)
