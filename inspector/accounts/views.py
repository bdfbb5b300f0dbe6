"""Sign up, the account page and its API token; sign-in, sign-out and password reset are
Django's own views with our templates (see account_urls)."""

from __future__ import annotations

from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.authtoken.models import Token

from inspector.accounts import audit
from inspector.accounts import services as accounts


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("account")
    form = accounts.SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        audit.record(request, "account.signup", user, f"signed up as {form.cleaned_data['role']}")
        return redirect("explorations")
    status = 400 if request.method == "POST" else 200
    return render(request, "registration/signup.html", {"form": form}, status=status)


@login_required
def account(request: HttpRequest) -> HttpResponse:
    context = {
        "role": accounts.role_of(request.user),
        "token": Token.objects.filter(user=request.user).first(),
        "new_token": request.session.pop("tokenlens_new_token", None),
    }
    return render(request, "registration/account.html", context)


@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    token = accounts.create_token(request)
    request.session["tokenlens_new_token"] = token.key
    return redirect("account")


@login_required
@require_POST
def token_revoke(request: HttpRequest) -> HttpResponse:
    accounts.revoke_token(request)
    return redirect("account")
