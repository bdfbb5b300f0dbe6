"""Models added to the catalog from the Models page and the API (admins)."""
