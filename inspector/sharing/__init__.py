"""Share links and their review by admins."""
