# Steward: `make run` starts the whole system, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-lock

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/steward
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/steward_bench
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/14

export PYTHONUNBUFFERED := 1

.PHONY: run venv test lint bench faults clean

venv: $(STAMP)

$(STAMP): requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $(STAMP)

# The launcher starts a private Redis when none answers, runs the Procfile under honcho, prints
# where to go once everything is up, and exits 0 on Ctrl-C.
run: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --if-empty
	$(BIN)/python -m project.launcher

test: venv
	@DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python -m project.service_check postgres
	@REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m project.service_check redis
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

# Every fault scenario in its long configuration (real workers, schedulers, a private
# redis-server); prints the results table and writes bench/results/faults.json.
faults: venv
	@DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python -m project.service_check postgres
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m tests.faults $(FAULTS_ARGS)

bench: venv
	DATABASE_URL=$(BENCH_DATABASE_URL) REDIS_URL=$(BENCH_REDIS_URL) $(BIN)/python -m bench

clean:
	rm -rf $(VENV) db.sqlite3 var
