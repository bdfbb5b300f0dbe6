"""People: sign-up and roles, who may do what (access), API authentication, the activity log."""
