"""What every page's template gets: whether the model services are up."""

from inspector.compute import services


def service_status(request):
    """Lets base.html show a banner when the configured Redis is down."""
    return {"redis_status": services.redis_status()}
