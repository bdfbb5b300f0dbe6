"""Long computations as jobs: POST /api/v1/jobs/ starts one, GET /api/v1/jobs/{id}/ follows it,
POST /api/v1/jobs/{id}/cancel/ stops it (its worker goes back to other work at once).

The synchronous endpoints wait for their result; a page that wants a progress bar for work that
can take many seconds (head clustering's first UMAP, integrated gradients) starts a job instead
and reads its `stage` ("Integrated gradients: 12 of 32 steps") until it is done.
"""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from inspector.accounts import access
from inspector.analysis.scope import cache_scope
from inspector.analysis.serializers import AttributionRequestSerializer, HeadsRequestSerializer
from inspector.api.schema import documented
from inspector.compute import services
from inspector.errors import ServiceError
from inspector.models import Job

JOB_REQUESTS = {
    Job.Kind.HEADS: HeadsRequestSerializer,
    Job.Kind.ATTRIBUTION: AttributionRequestSerializer,
}


class JobRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[kind.value for kind in JOB_REQUESTS])
    params = serializers.DictField()


def job_dict(job: Job) -> dict:
    error = {"field": job.error_field, "message": job.error_message} if job.error_message else None
    return {
        "id": str(job.pk),
        "kind": job.kind,
        "status": job.status,
        "stage": job.stage,
        "result": job.result,
        "error": error,
    }


@documented(JobRequestSerializer, status=202)
@api_view(["POST"])
def start(request):
    request_serializer = JobRequestSerializer(data=request.data)
    request_serializer.is_valid(raise_exception=True)
    kind = request_serializer.validated_data["kind"]
    params = JOB_REQUESTS[kind](data=request_serializer.validated_data["params"])
    params.is_valid(raise_exception=True)
    principal = access.principal(request)
    job_params = {**params.validated_data}
    job_params["cache_scope"] = cache_scope(request, job_params)  # see engine/kvcache.py
    job = services.start_job(kind, job_params, session_key=principal)
    return Response(job_dict(job), status=status.HTTP_202_ACCEPTED)


def _own_job(request, job_id) -> Job:
    job = Job.objects.filter(pk=job_id, session_key=access.principal(request)).first()
    if job is None:
        raise ServiceError("No such job in this browser session", status=404)
    return job


@documented()
@api_view(["GET"])
def detail(request, job_id):
    return Response(job_dict(_own_job(request, job_id)))


@documented(summary="Cancel a pending or running job (a finished one: 409)")
@api_view(["POST"])
def cancel(request, job_id):
    job = _own_job(request, job_id)
    if not job.cancel():
        already = job.get_status_display().lower()
        raise ServiceError(f"This job is already {already}", field="job", status=409)
    return Response(job_dict(job))
