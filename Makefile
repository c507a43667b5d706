.PHONY: run test lint openapi console
run:  ## environment, install, migrate, demo community, serve on :8000
	scripts/run.sh
test:  ## the whole suite on PostgreSQL (found or embedded); ARGS="..." go to pytest
	scripts/test.sh $(ARGS)
lint:
	.venv/bin/ruff check .
openapi:  ## regenerate the committed contract
	.venv/bin/python -m app.openapi_dump
console:  ## rebuild the console's bundle (app/static/console, committed) from console/ with npm
	cd console && npm ci --no-audit --no-fund && npm run build
