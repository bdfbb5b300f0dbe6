"""Accounts: sign-up with a role, sign-in hands a visitor's work over, password reset by email,
API tokens for scripts, CSRF on the browser's API calls, the demo on an empty database."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inspector.accounts.services import role_of
from inspector.models import AuditEvent, Exploration, Lesson

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"
PASSWORD = "a-long-test-password-1"


def _signup(client, username="nina", role="Student", **extra):
    data = {
        "username": username,
        "email": f"{username}@example.com",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "role": role,
        **extra,
    }
    return client.post("/accounts/signup/", data)


@pytest.mark.parametrize(
    ("role", "expected"), [("Student", "Student"), ("Instructor", "Instructor")]
)
def test_signing_up_puts_the_person_in_their_role_and_signs_them_in(role, expected):
    client = Client()
    response = _signup(client, role=role)
    assert response.status_code == 302 and response["Location"] == "/explore/"
    user = User.objects.get(username="nina")
    assert role_of(user) == expected
    assert client.get("/accounts/").context["role"] == expected
    assert AuditEvent.objects.filter(action="account.signup", actor=user).exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"password2": "something-else-1"}, "password2"),
        ({"email": "not-an-email"}, "email"),
        ({"role": "Admin"}, "role"),
        ({"password1": "123", "password2": "123"}, "password2"),
    ],
)
def test_a_bad_sign_up_names_the_field_and_creates_nobody(change, field):
    response = _signup(Client(), **change)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert not User.objects.filter(username="nina").exists()


def test_a_second_account_with_the_same_email_is_refused(student):
    response = _signup(Client(), username="copy", email=student.email)
    assert response.status_code == 400 and "sign in instead" in response.content.decode()


def test_signing_in_makes_the_visitors_explorations_yours(student):
    visitor = APIClient()
    created = visitor.post(
        "/api/v1/explorations/", {"model": SMOL, "prompt": "Hello there"}, "json"
    ).json()
    assert Exploration.objects.get(pk=created["id"]).owner is None
    response = visitor.post("/accounts/login/", {"username": "stu", "password": "stustu"})
    assert response.status_code == 302
    exploration = Exploration.objects.get(pk=created["id"])
    assert exploration.owner == student and exploration.session_key == ""
    assert visitor.get(f"/explore/{exploration.pk}/").status_code == 200
    visitor.post("/accounts/logout/")
    assert visitor.get(f"/explore/{exploration.pk}/").status_code == 404


def test_another_browser_does_not_inherit_a_visitors_work_by_signing_in(student):
    visitor = APIClient()
    created = visitor.post(
        "/api/v1/explorations/", {"model": SMOL, "prompt": "Hello there"}, "json"
    ).json()
    elsewhere = Client()
    elsewhere.post("/accounts/login/", {"username": "stu", "password": "stustu"})
    assert Exploration.objects.get(pk=created["id"]).owner is None


def test_a_wrong_password_is_refused_with_a_message(student):
    response = Client().post("/accounts/login/", {"username": "stu", "password": "nope"})
    assert (
        response.status_code == 200 and "correct username and password" in response.content.decode()
    )


def test_password_reset_sends_a_link_that_sets_a_new_password(student):
    client = Client()
    response = client.post("/accounts/password-reset/", {"email": student.email})
    assert response.status_code == 302 and len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200 and form_page.context["validlink"]
    new = "a-brand-new-password-2"
    done = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}
    )
    assert done.status_code == 302
    assert Client().login(username="stu", password=new)


def test_an_api_token_works_for_scripts_and_stops_when_revoked(student):
    browser = Client()
    browser.force_login(student)
    browser.post("/accounts/token/")
    page = browser.get("/accounts/").content.decode()
    key = Token.objects.get(user=student).key
    assert key in page  # shown once, right after it is made
    assert key not in browser.get("/accounts/").content.decode()
    script = APIClient(HTTP_AUTHORIZATION=f"Token {key}")
    created = script.post("/api/v1/explorations/", {"model": SMOL, "prompt": "Hi"}, "json")
    assert created.status_code == 201
    assert Exploration.objects.get(pk=created.json()["id"]).owner == student
    browser.post("/accounts/token/revoke/")
    assert script.get("/api/v1/explorations/").status_code in (401, 403)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"token.create", "token.revoke"} <= actions


def test_the_account_page_needs_a_signed_in_person():
    response = Client().get("/accounts/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_visitors_api_calls_from_the_browser_need_the_csrf_token():
    browser = APIClient(enforce_csrf_checks=True)
    browser.get("/explore/")  # the session cookie and the CSRF cookie
    refused = browser.post("/api/v1/explorations/", {"model": SMOL, "prompt": "Hi"}, "json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    token = browser.cookies["csrftoken"].value
    allowed = browser.post(
        "/api/v1/explorations/",
        {"model": SMOL, "prompt": "Hi"},
        "json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert allowed.status_code == 201


def test_every_page_form_is_csrf_protected(student):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(student)
    assert browser.post("/accounts/token/").status_code == 403
    assert not Token.objects.filter(user=student).exists()


def test_the_demo_is_made_on_an_empty_database_only():
    from inspector.demo import seed_demo

    accounts = seed_demo()
    assert [account.username for account in accounts] == ["instructor", "student", "admin"]
    for account in accounts:
        assert Client().login(username=account.username, password=account.password)
    lesson = Lesson.objects.get()
    assert lesson.visibility == Lesson.Visibility.PUBLISHED and lesson.items.count() == 2
    first = lesson.items.order_by("position").first().exploration
    assert first.branches.count() == 2 and first.root.length == 6
    assert seed_demo() is None and User.objects.count() == 3
