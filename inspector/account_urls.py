"""Sign up, sign in and out, password reset, the account page (API token)."""

urlpatterns: list = []
