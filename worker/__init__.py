"""The model side: Celery tasks, the per-process model registry and steppers, running jobs and
saving steps. The one package that imports both Django (inspector's models) and engine; the web
side never imports it, it sends work here by task name (inspector.compute.dispatch)."""
