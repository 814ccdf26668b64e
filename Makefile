# ketasim: `make run` runs the main job, `make test` the test suite.
# Both create the virtual environment first if it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint clean system-deps

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Debian's chromium for the browser test of the HTML report (playwright drives it through
# executable_path; `playwright install` is never used). Installed only when missing.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian package) for the report browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

run: $(STAMP)
	$(BIN)/ketasim validate --out runs/validate

# lint-imports checks the layer contracts in pyproject.toml (a new import cycle fails)
test: $(STAMP) system-deps
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow" -p no:cacheprovider

test-all: $(STAMP) system-deps
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_signaling.py

lint: $(STAMP)
	$(BIN)/ruff check ketasim tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
