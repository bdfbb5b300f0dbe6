"""Browser and service tests: real daphne, workers, Redis, PostgreSQL and Chromium."""
