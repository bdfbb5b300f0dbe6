"""The Celery app. Workers own the models: `celery -A tokenlens_site worker --pool=solo`.

--pool=solo (or threads) keeps the model in the one worker process that loaded it; CUDA is not
fork-safe, so a prefork pool must never load a model in its parent.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenlens_site.settings")

app = Celery("tokenlens")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.include = ["engine.tasks"]
