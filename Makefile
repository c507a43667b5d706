.PHONY: run test lint openapi
run:  ## environment, install, migrate, demo community, serve on :8000
	scripts/run.sh
test:  ## the whole suite on SQLite and PostgreSQL
	scripts/test.sh
lint:
	.venv/bin/ruff check .
openapi:  ## regenerate the committed contract
	.venv/bin/python -m app.openapi_dump
