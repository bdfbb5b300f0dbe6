"""The Celery app. Workers own the models: `celery -A tokenlens_site worker`.

The settings choose the thread pool (CELERY_WORKER_POOL, CELERY_WORKER_CONCURRENCY): the model
stays in the one worker process that loaded it (CUDA is not fork-safe, so a prefork pool must
never load a model in its parent), and the pool's threads wait together on its scheduler.
"""

import contextlib
import os

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenlens_site.settings")

app = Celery("tokenlens")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.include = ["worker.tasks"]


@worker_ready.connect
def _start_heartbeat(**_):
    """Tell the web processes this worker is alive (inspector.compute.heartbeat)."""
    from inspector.compute import heartbeat as worker_heartbeat

    worker_heartbeat.start_beating()


@worker_shutdown.connect
def _stop_heartbeat(**_):
    from inspector.compute import heartbeat as worker_heartbeat

    with contextlib.suppress(Exception):
        worker_heartbeat.stop(worker_heartbeat.worker_name())
