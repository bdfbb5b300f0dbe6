"""manage.py prepare_models, seed_demo, expire_jobs."""
