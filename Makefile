.PHONY: run test lint openapi
run:  ## environment, install, migrate, demo community, serve on :8000
	scripts/run.sh
test:  ## the whole suite on PostgreSQL (found or embedded); ARGS="..." go to pytest
	scripts/test.sh $(ARGS)
lint:
	.venv/bin/ruff check .
openapi:  ## regenerate the committed contract
	.venv/bin/python -m app.openapi_dump
