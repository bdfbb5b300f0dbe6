"""Nothing computed from one person's work reaches another: the worker's key/value cache is
reused within one person's requests only, and a Tokens page's updates go to its own session."""

import pytest
from rest_framework.test import APIClient

pytestmark = [pytest.mark.django_db, pytest.mark.model]
SMOL = "smollm2-135m-instruct"
SECRET = "My private diary: today I told nobody that the password is swordfish"


def _stepped_exploration(client: APIClient) -> str:
    created = client.post("/api/v1/explorations/", {"model": SMOL, "prompt": SECRET}, "json")
    assert created.status_code == 201, created.content
    branch_id = created.json()["branches"][0]["id"]
    for _ in range(2):
        assert client.post(f"/api/v1/branches/{branch_id}/steps/", {}, "json").status_code == 201
    return branch_id


def _cached_tokens(client: APIClient, text: str) -> int:
    response = client.post("/api/v1/logit-lens/", {"model": SMOL, "text": text}, "json")
    assert response.status_code == 200, response.content
    return response.json()["cached_tokens"]


def test_the_lens_reveals_nothing_of_another_persons_cached_prompt():
    owner, stranger = APIClient(), APIClient()
    _stepped_exploration(owner)
    probe = SECRET + " and more"
    assert _cached_tokens(stranger, probe) == 0
    assert _cached_tokens(APIClient(), probe) == 0  # a cookie-less client: no one's scope
    # The same probe by the owner does reuse their own cached states (the test can fail).
    assert _cached_tokens(owner, probe) > 10
