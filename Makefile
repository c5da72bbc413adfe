# The two commands a newcomer needs (see README): `make run` and `make test`.
# Both create or reuse the cached environment (scripts/bootstrap.sh) and the
# prepared embedded model, so they work on a fresh machine and are fast after.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
BOOTSTRAP := scripts/bootstrap.sh
ARGS ?=

.PHONY: run test lint format env model

env:
	@$(BOOTSTRAP) >/dev/null

model:
	@env=$$($(BOOTSTRAP)); "$$env/bin/alora-serve" prepare-model

run:
	@env=$$($(BOOTSTRAP)); "$$env/bin/alora-serve" prepare-model; \
	  exec "$$env/bin/alora-serve" serve $(ARGS)

test:
	@env=$$($(BOOTSTRAP)); "$$env/bin/alora-serve" prepare-model; \
	  "$$env/bin/ruff" check . && "$$env/bin/ruff" format --check . && \
	  "$$env/bin/python" -m pytest $(ARGS)

lint:
	@env=$$($(BOOTSTRAP)); "$$env/bin/ruff" check . && "$$env/bin/ruff" format --check .

format:
	@env=$$($(BOOTSTRAP)); "$$env/bin/ruff" check --fix . && "$$env/bin/ruff" format .
