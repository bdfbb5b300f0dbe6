"""Share links and the review pages (routes added by the sharing feature)."""

urlpatterns: list = []
