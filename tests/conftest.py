"""Shared fixtures: real packaged models (read-only, once per session), a tiny random model,
and the rule that a test needing a real service fails under CI instead of skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from engine.jit_cache import keep_compiled_code
from engine.loading import PACKAGED_MODELS, build_catalog, load, pick_device

PACKAGED_KEYS = [spec.key for spec in PACKAGED_MODELS]


def pytest_configure(config):
    # Connections opened by async consumers' worker threads must not outlive a test, or the
    # PostgreSQL test database cannot be dropped at the end.
    django_settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Django's advice for test speed: every person a test makes costs a PBKDF2 hash (a
    # million iterations) otherwise. The servers the e2e tests start keep the real hasher.
    django_settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The compute budget is out of the way for every test, module-scoped fixtures included
    # (tests/inspector/test_budget.py sets its own).
    django_settings.TOKENLENS_COMPUTE_BUDGET = django_settings.TOKENLENS_VISITOR_BUDGET = 10**12
    # Nothing loads models behind a test's back (the e2e servers do warm up).
    django_settings.TOKENLENS_WARM_UP = False
    # Head maps in tests load UMAP's machine code from the model cache, as workers do.
    keep_compiled_code(django_settings.TOKENLENS_NUMBA_CACHE)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Before pytest-django makes the test database: close psycopg's connection pool if
    anything opened it already. Django's create_test_db renames the database but keeps an
    open pool, whose connections still go to the real one (`test` under CI): the test
    database's migrations and every query would land there."""
    from django.db import connections

    for connection in connections.all():
        if hasattr(connection, "close_pool"):
            connection.close_pool()


def require_env(name: str) -> str:
    """The value of a service URL variable; skip without it locally, fail without it in CI."""
    value = os.environ.get(name, "")
    if not value:
        message = f"{name} is not set: this test needs the real service"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return value


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Every test but a browser test starts in a thread with no event loop marked as running.
    Playwright's sync API leaves its loop marked as running between calls (by design, see its
    sync_api/_context_manager.py), so on a worker that already ran a browser test Django would
    refuse ORM calls (SynchronousOnlyOperation) and pytest-asyncio could not start a loop. The
    mark is lifted around the test's setup, call and teardown, and put back for Playwright."""
    import asyncio

    marked = asyncio._get_running_loop()
    if marked is None or "chromium" in getattr(item, "fixturenames", ()):
        return (yield)
    asyncio._set_running_loop(None)
    try:
        return (yield)
    finally:
        asyncio._set_running_loop(marked)


@pytest.fixture(autouse=True)
def _tasks_run_inline(settings):
    """Unit tests run tasks inline; the e2e tests start real workers of their own."""
    settings.CELERY_TASK_ALWAYS_EAGER = True


_loaded_models: dict = {}


def packaged_model(key: str):
    """A real packaged model from the cache (prepared by `make models`); shared, read-only."""
    if key not in _loaded_models:
        spec = build_catalog()[key]
        _loaded_models[key] = load(spec, django_settings.TOKENLENS_MODEL_CACHE, pick_device())
    return _loaded_models[key]


@pytest.fixture(scope="session", params=PACKAGED_KEYS)
def any_packaged_model(request):
    return packaged_model(request.param)


@pytest.fixture(scope="session")
def smollm2():
    return packaged_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def gemma():
    return packaged_model("gemma-3-270m")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2) -> Path:
    """A tiny random Llama (2 layers) with SmolLM2's tokenizer, saved as a local model folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    config = LlamaConfig(
        vocab_size=len(smollm2.tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    smollm2.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def api():
    """A REST client with its own cookies (a visitor's browser session)."""
    from rest_framework.test import APIClient

    return APIClient()


def make_person(username: str, role: str | None = None, *, staff: bool = False):
    """A signed-up user in the Instructor or Student group (or staff); password = username*2."""
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(
        username, f"{username}@example.com", username * 2, is_staff=staff
    )
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def instructor(db):
    return make_person("ines", "Instructor")


@pytest.fixture
def student(db):
    return make_person("stu", "Student")


@pytest.fixture
def other_student(db):
    return make_person("otto", "Student")


@pytest.fixture
def admin_user(db):
    return make_person("ada", staff=True)


def client_for(user):
    """A REST client signed in as `user` through the session (as the browser is)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(user)
    return client


def make_tiny_gpt2(folder: Path) -> Path:
    """A tiny random GPT-2 (2 layers, 2 heads, 32 wide, 64 learned positions, Conv1D layers,
    no chat template) and a byte-level BPE tokenizer trained here, offline, with `tokenizers`:
    a local model folder as `save_pretrained` writes one."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = ["The capital of France is Paris. Once upon a time there was a tiny model."] * 20
    bpe.train_from_iterator(corpus, trainer)
    eos = "<|endoftext|>"
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=eos, eos_token=eos, unk_token=eos
    )
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    """A tiny random GPT-2 saved as a local model folder (see make_tiny_gpt2)."""
    return make_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2")
