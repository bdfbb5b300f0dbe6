"""The Celery app. Workers own the models: `celery -A tokenlens_site worker`.

The settings choose the thread pool (CELERY_WORKER_POOL, CELERY_WORKER_CONCURRENCY): the model
stays in the one worker process that loaded it (CUDA is not fork-safe, so a prefork pool must
never load a model in its parent), and the pool's threads wait together on its scheduler.
"""

import contextlib
import os

from celery import Celery
from celery.signals import celeryd_after_setup, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenlens_site.settings")

app = Celery("tokenlens")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.include = ["worker.tasks"]


@celeryd_after_setup.connect
def _consume_model_queues(sender, instance, **_):
    """Consume the queue of every model this worker serves and a queue of its own, where work
    on the branches whose caches it holds comes (inspector.compute.routing)."""
    from inspector.compute import routing

    for queue in routing.queues_of_this_worker():
        instance.app.amqp.queues.select_add(queue)


@worker_ready.connect
def _start_heartbeat(sender=None, **_):
    """Tell the web processes this worker is alive and what it serves; a model added to the
    catalog meanwhile (inspector.catalog) is served from the next heartbeat on: the worker
    asks its own consumer, through Celery's remote control, to take that model's queue too
    (a failure there is tried again at the next beat)."""
    from inspector.compute import heartbeat as worker_heartbeat
    from inspector.compute import routing

    def consume(models: list[str]) -> None:
        for model in models:
            queue = routing.MODEL_QUEUE.format(model=model)
            app.control.add_consumer(queue, destination=[sender.hostname], reply=False)

    worker_heartbeat.start_beating(routing.served_models, on_new=consume)


@worker_shutdown.connect
def _stop_heartbeat(**_):
    from inspector.compute import heartbeat as worker_heartbeat

    with contextlib.suppress(Exception):
        worker_heartbeat.stop(worker_heartbeat.worker_name())
