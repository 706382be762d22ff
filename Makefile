# The two commands of the README quickstart, plus helpers. Each target bootstraps first.
PY := .venv/bin/python

.PHONY: bootstrap demo test lint bench

bootstrap:
	@bash scripts/bootstrap.sh

## Run the sky_train_local example DAG end to end on the local cloud (SQLite metadata DB in ./.airflow-home).
demo: bootstrap
	@$(PY) scripts/run_demo.py

## The whole test suite (unit, integration with real sshd, end-to-end DAG runs), then ruff and mypy.
test: bootstrap
	@$(PY) -m pytest -q -p no:cacheprovider tests
	@.venv/bin/ruff check airflow_provider_sky tests bench dags scripts
	@.venv/bin/mypy
	@echo "lint: ruff and mypy clean"

lint: bootstrap
	@.venv/bin/ruff check airflow_provider_sky tests bench dags scripts
	@.venv/bin/mypy

bench: bootstrap
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done
