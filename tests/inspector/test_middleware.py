"""Checks made before any view: a NUL in the address is a 400, never a 500."""

import json

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("/api/v1/explorations/%00/", "path"),
        ("/api/v1/lessons/link/%00/", "path"),
        ("/api/v1/explorations/?search=%00", "search"),
        ("/api/v1/models/?x=a\x00b", "x"),
        ("/api/v1/models/?a=1&b%00=2", "b"),
        ("/api/v1/models/?%00", "query"),
    ],
)
def test_the_api_refuses_a_nul_in_the_address_in_its_error_format(client, url, where):
    response = client.get(url)
    assert response.status_code == 400
    error = json.loads(response.content)["error"]
    assert error["field"] == where and "NUL" in error["message"]


@pytest.mark.parametrize(
    "url",
    ["/lessons/link/%00/", "/explore/%00/", "/share/a%00b/", "/explore/?q=%00", "/static/%00.js"],
)
def test_pages_refuse_a_nul_in_the_address_with_the_400_page(client, url):
    response = client.get(url)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")  # the 400 page, any template


def test_a_nul_in_a_form_post_to_a_page_is_refused_too(client):
    assert client.post("/lessons/link/%00/", {"a": "b"}).status_code == 400


def test_addresses_without_a_nul_pass(client):
    assert client.get("/api/v1/models/").status_code == 200
    assert client.get("/explore/?q=%2500").status_code == 200
