# ketasim: `make run` runs the main job, `make test` the test suite.
# Both create the virtual environment first if it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-brian2-venv lint clean system-deps

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Debian's chromium for the browser test of the HTML report (playwright drives it through
# executable_path; `playwright install` is never used), and R with nlme for the check of
# the MMRM against nlme::gls, and lme4, pbkrtest and lmerTest for the check of its
# Kenward-Roger and Satterthwaite degrees of freedom (tests/test_mmrm.py). Each installed
# only when missing.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian package) for the report browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@{ command -v Rscript >/dev/null 2>&1 && \
	  Rscript -e 'for (p in c("nlme", "lme4", "pbkrtest", "lmerTest")) library(p, character.only = TRUE)' \
	  >/dev/null 2>&1; } || { \
	  echo "installing R, nlme, lme4, pbkrtest and lmerTest (Debian packages) for the MMRM checks"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends r-base-core r-cran-nlme r-cran-lme4 r-cran-pbkrtest \
	    r-cran-lmertest; }

run: $(STAMP)
	$(BIN)/ketasim validate --out runs/validate

# lint-imports checks the layer contracts in pyproject.toml (a new import cycle fails)
test: $(STAMP) system-deps
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow" -p no:cacheprovider -n auto

test-all: $(STAMP) system-deps
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_signaling.py

# Brian2 for `benchmarks/bench_circuit.py --brian2` (used by default once this exists), in
# its own venv: Brian2 2.11.0 requires Python >= 3.13, the project runs on 3.11 (and
# 2.9.0, the newest for 3.11, breaks on the project's numpy 2.4). The pins and why:
# benchmarks/brian2-requirements.txt. BRIAN2_PY is a Python 3.13 (with pyenv, e.g.
# `make bench-brian2-venv BRIAN2_PY=$(pyenv prefix 3.13.0)/bin/python3.13`); the cython
# target also needs a C compiler and that Python's headers.
BRIAN2_PY ?= python3.13
BRIAN2_VENV := benchmarks/.brian2-venv
BRIAN2_STAMP := $(BRIAN2_VENV)/.installed

bench-brian2-venv: $(BRIAN2_STAMP)

$(BRIAN2_STAMP): benchmarks/brian2-requirements.txt
	@test -x $(BRIAN2_VENV)/bin/python || $(BRIAN2_PY) -m venv $(BRIAN2_VENV)
	$(BRIAN2_VENV)/bin/python -m pip install --quiet -r benchmarks/brian2-requirements.txt
	$(BRIAN2_VENV)/bin/python -c "import brian2"
	@touch $(BRIAN2_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check ketasim tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(BRIAN2_VENV) runs .pytest_cache .hypothesis
