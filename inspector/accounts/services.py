"""Accounts: signing up with a role, handing a visitor's work to the account they sign in to,
and the API token scripts use."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import Group, User
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

from inspector.accounts import access, audit
from inspector.models import Exploration

ROLE_CHOICES = [
    (access.STUDENTS, "Student: explore, fork lessons, share"),
    (access.INSTRUCTORS, "Instructor: also build lessons and see your students' forks"),
]


class SignUpForm(UserCreationForm):
    email = forms.EmailField(help_text="For resetting your password; never shown to others.")
    role = forms.ChoiceField(
        choices=ROLE_CHOICES, initial=access.STUDENTS, widget=forms.RadioSelect
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email exists; sign in instead")
        return email

    @transaction.atomic
    def save(self, commit: bool = True) -> User:
        user = super().save(commit=True)
        user.groups.add(Group.objects.get_or_create(name=self.cleaned_data["role"])[0])
        return user


def role_of(user) -> str:
    """The person's role in words: Admin, Instructor, Student or Visitor."""
    if user is None or not user.is_authenticated:
        return "Visitor"
    if user.is_staff:
        return "Admin"
    names = set(user.groups.values_list("name", flat=True))
    if access.INSTRUCTORS in names:
        return "Instructor"
    return "Student"


@receiver(user_logged_in)
def adopt_visitor_work(sender, request, user, **kwargs) -> None:
    """What this browser made before signing in becomes the account's (explorations and their
    share links; lessons need an account to exist)."""
    if request is None:
        return
    visitor_key = request.session.pop(access.VISITOR_KEY, None)
    if not visitor_key:
        return
    Exploration.objects.filter(owner__isnull=True, session_key=visitor_key).update(
        owner=user, session_key=""
    )


def create_token(request) -> Token:
    """A new API token for the signed-in user; the previous one stops working."""
    Token.objects.filter(user=request.user).delete()
    token = Token.objects.create(user=request.user)
    audit.record(request, "token.create", request.user, "created an API token")
    return token


def revoke_token(request) -> None:
    if Token.objects.filter(user=request.user).delete()[0]:
        audit.record(request, "token.revoke", request.user, "revoked their API token")
