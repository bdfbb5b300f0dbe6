"""The exploration pages' server side (the browser tests drive the same views in Chromium)."""

import math

import pytest
from django.core.cache import cache

from inspector.models import Branch
from inspector.protocol import GENERATING_KEY, OUTCOME_KEY
from tests.inspector.makers import explore_in_page

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"


@pytest.fixture
def branch(client):
    return explore_in_page(client)


def test_the_sliders_preview_the_next_token_without_generating(client, branch):
    response = client.get(f"/branches/{branch.pk}/next/", {"temperature": 0})
    html = response.content.decode()
    assert response.status_code == 200
    assert "removed by temperature" in html and "100.0 %" in html
    assert branch.steps.count() == 0
    response = client.get(f"/branches/{branch.pk}/next/", {"top_k": 3, "temperature": 1})
    assert response.content.decode().count(">kept<") == 3


def test_a_bad_slider_value_says_which(client, branch):
    html = client.get(f"/branches/{branch.pk}/next/", {"top_p": 0}).content.decode()
    assert "top_p must be above 0" in html


def test_keeping_the_settings_changes_the_next_steps(client, branch):
    client.post(f"/branches/{branch.pk}/params/", {"temperature": 0, "seed": 4})
    branch.exploration.refresh_from_db()
    assert branch.exploration.params["temperature"] == 0
    client.post(f"/branches/{branch.pk}/step/", {"mode": "sample"}, HTTP_HX_REQUEST="true")
    assert branch.steps.get().mode == "greedy"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mode": "sample", "token_id": "abc"}, "A token id is a whole number ≥ 0"),
        ({"mode": "force", "token_id": "²"}, "A token id is a whole number ≥ 0"),  # isdigit()
        ({"mode": "force", "token_id": "-3"}, "A token id is a whole number ≥ 0"),
        ({"mode": "force", "token_id": "", "text": ""}, "Give a token id or a text to force"),
        ({"mode": "jump"}, "A step is sample, greedy or force, not &#x27;jump&#x27;"),
    ],
)
def test_a_bad_step_form_shows_why_and_steps_nothing(client, branch, data, message):
    swapped = client.post(f"/branches/{branch.pk}/step/", data, HTTP_HX_REQUEST="true")
    assert swapped.status_code == 422  # the status htmx swaps (base.html's htmx-config)
    assert message in swapped.content.decode()
    assert 'id="branch-view"' in swapped.content.decode()
    plain = client.post(f"/branches/{branch.pk}/step/", data)
    assert plain.status_code == 400
    page = plain.content.decode()
    assert message in page and "<html" in page
    assert branch.steps.count() == 0


def test_the_page_shows_tokens_surprisal_and_the_tree(client, branch):
    for _ in range(3):
        client.post(f"/branches/{branch.pk}/step/", {"mode": "sample"})
    html = client.get(f"/explore/{branch.exploration_id}/").content.decode()
    assert html.count('class="gen b') == 3 + 5  # three tokens and the five legend swatches
    assert html.count("<rect ") == 3 + 3 and "perplexity" in html  # surprisal and entropy
    assert html.count('class="entropy-point"') == 3 and "tokens in play" in html
    assert 'aria-current="true">main</a>' in html


def test_a_generation_whose_worker_vanished_offers_to_resume(client, branch):
    cache.delete(GENERATING_KEY.format(branch=branch.pk))
    cache.delete(OUTCOME_KEY.format(branch=branch.pk))
    html = client.get(f"/branches/{branch.pk}/view/", {"was_generating": "1"}).content.decode()
    assert "no worker is stepping this branch" in html and "Generate to the end" in html
    cache.set(OUTCOME_KEY.format(branch=branch.pk), ["stopped", ""])
    html = client.get(f"/branches/{branch.pk}/view/", {"was_generating": "1"}).content.decode()
    assert "Generation stopped." in html


def test_a_stranger_gets_a_404(branch):
    from django.test import Client

    assert Client().get(f"/explore/{branch.exploration_id}/").status_code == 404
    assert Client().post(f"/branches/{branch.pk}/step/").status_code == 404


def test_two_branches_compare_from_where_they_diverge(client, branch):
    for _ in range(3):
        client.post(f"/branches/{branch.pk}/step/", {"mode": "sample"})
    main_steps = branch.sequence()
    alternative = main_steps[1].distribution["tokens"][0]["id"]
    if alternative == main_steps[1].token_id:
        alternative = main_steps[1].distribution["tokens"][1]["id"]
    client.post(f"/branches/{branch.pk}/fork/", {"at_index": 1, "token_id": alternative})
    child = Branch.objects.exclude(pk=branch.pk).get(exploration=branch.exploration)
    response = client.get(
        f"/explore/{branch.exploration_id}/compare/", {"a": branch.pk, "b": child.pk}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "share their first\n    1 token" in html
    expected = sum(math.log(step.p_base) for step in main_steps)
    assert f'<td data-testid="logprob">{expected:.2f}</td>' in html


def test_the_prompt_shows_as_the_model_reads_it(client, branch):
    html = client.get(f"/explore/{branch.exploration_id}/prompt/").content.decode()
    assert "5 tokens" in html and 'data-testid="prompt-tokens"' in html


def test_the_next_token_panel_says_which_position_it_is_for(client, branch):
    html = client.get(f"/branches/{branch.pk}/next/").content.decode()
    assert "Right after the prompt" in html and 'data-for=""' in html
    for _ in range(2):
        client.post(f"/branches/{branch.pk}/step/", {"mode": "greedy"})
    ids = ",".join(str(token) for token in branch.token_ids())
    last = branch.sequence(with_candidates=False)[-1]
    html = client.get(f"/branches/{branch.pk}/next/", {"top_n": 10}).content.decode()
    assert f'data-for="{ids}"' in html and "After token\n  #1" in html
    assert html.count("data-token-id=") == 10 and html.count('data-action="choose"') == 10
    assert last.text.strip() in html


def test_the_candidates_shown_are_one_of_the_choices(client, branch):
    html = client.get(f"/branches/{branch.pk}/next/", {"top_n": 7}).content.decode()
    assert "shows 10, 20, 50 or 100 candidates" in html
    html = client.get(f"/branches/{branch.pk}/next/", {"top_n": "many"}).content.decode()
    assert "top_n must be a whole number" in html


def test_the_next_token_panel_waits_while_the_branch_generates(client, branch):
    from inspector.compute import leases

    key = GENERATING_KEY.format(branch=branch.pk)
    leases.store().acquire(key, "generation-under-test", 30)
    try:
        html = client.get(f"/branches/{branch.pk}/next/").content.decode()
    finally:
        leases.store().release(key, "generation-under-test")
    assert 'data-for="generating"' in html and "comes back when it stops" in html


def test_the_branches_panel_is_read_again_as_it_is_now(client, branch):
    html = client.get(f"/branches/{branch.pk}/tree/").content.decode()
    assert 'id="tree"' in html and 'data-finish=""' in html and "ended:" not in html
    Branch.objects.filter(pk=branch.pk).update(finish_reason="max_tokens")
    html = client.get(f"/branches/{branch.pk}/tree/").content.decode()
    assert 'data-finish="max_tokens"' in html and "ended: max_tokens" in html


def test_the_entropy_line_is_what_each_step_recorded(client, branch):
    for _ in range(3):
        client.post(f"/branches/{branch.pk}/step/", {"mode": "sample"})
    html = client.get(f"/explore/{branch.exploration_id}/").content.decode()
    for step in branch.steps.order_by("index"):
        bits = step.distribution["entropy"]
        assert f"{bits:.2f} bits after the settings ({2**bits:.1f} tokens in play)" in html


def test_keeping_the_settings_says_so_in_place(client, branch):
    response = client.post(
        f"/branches/{branch.pk}/params/", {"temperature": 0.4, "top_k": 7}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200 and "Kept: the next steps" in html
    assert "temperature 0.4, top-k 7" in html
    response = client.post(f"/branches/{branch.pk}/params/", {"top_p": 0}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422 and "top_p must be above 0" in response.content.decode()
    branch.exploration.refresh_from_db()
    assert branch.exploration.params["top_k"] == 7  # the refused change lost nothing


def test_the_chat_template_box_follows_the_model(client):
    html = client.get("/explore/").content.decode()
    assert 'id="chat-templates"' in html and '"smollm2-135m-instruct": true' in html
    assert '"gemma-3-270m": false' in html
    assert 'name="use_chat_template" id="id_use_chat_template" checked' in html


def test_an_example_starts_writing_in_one_click(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the generation is queued on commit
        response = client.post("/explore/example/fact/", {"tour": "1"})
    assert response.status_code == 302 and response.url.endswith("?tour=1")
    branch = Branch.objects.get(exploration_id=response.url.split("/")[2])
    assert branch.exploration.prompt == "The capital of France is"
    assert branch.exploration.params["temperature"] == 0
    assert branch.steps.count() == 12  # it wrote (inline here: tasks run eagerly in tests)
    assert client.post("/explore/example/nothing/").status_code == 404
    html = client.get("/").content.decode()
    assert html.count('data-role="tour-flag"') == 3 and "Watch it recall a fact" in html
