"""Tests of the web side: pages, the API, consumers, permissions, races."""
