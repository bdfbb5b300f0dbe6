"""Explorations, their branches and steps: use-cases, pages, API, websocket consumers, charts."""
