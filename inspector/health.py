"""GET /healthz: whether the database and Redis answer (for load balancers and operators)."""

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from inspector.compute import services


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        connection.ensure_connection()
        database = "ok"
    except Exception:
        database = "down"
    redis = services.redis_status()
    healthy = database == "ok" and redis != "down"
    return JsonResponse(
        {"database": database, "redis": redis, "status": "ok" if healthy else "degraded"},
        status=200 if healthy else 503,
    )
