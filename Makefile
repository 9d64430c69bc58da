# The two set-up commands: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: a CPU wheel of exactly this version is on these machines; letting a
# dependency resolve torch by itself would pull a multi-GB CUDA build.
# constraints.txt: the versions the tests last passed with, so that a clean clone installs what was tested.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/itemaffinity analyze --store out/demo.duckdb --out out/report
	@echo
	@echo "Open the report:  out/report/index.html"
	@echo "Serve the REST API (OpenAPI at /docs) and the merchandiser UI:"
	@echo "  $(BIN)/itemaffinity serve --store out/demo.duckdb    # then open http://127.0.0.1:8000/"

# pytest exit code 5 means "no tests collected": treat it as a failure, never a pass.
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) out
