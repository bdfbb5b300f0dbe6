"""Lessons: an instructor's ordered explorations with notes and goals; pages, API, files."""
