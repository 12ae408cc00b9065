# make app    set up what the app needs (no scale engine, no test tools) and start it on the default checkpoint
# make test   set up everything, check the code style, run the tests (what CI runs)
# make test-fast   no setup: the code style and the fast tests (-m "not slow") in two processes, about 2 minutes
# make lint   the formatter and the linter only (ruff, configured in pyproject.toml)
# make space SPACE=USER/NAME   deploy the app as a Hugging Face Space (scripts/deploy_space.py)
# make default-checkpoint RAVDESS=DIR   rebuild checkpoints/default from the words-only one and RAVDESS (~1.5 h)
PYTHON ?= python3

.PHONY: setup app test test-fast lint bench space default-checkpoint
setup:
	PYTHON=$(PYTHON) bash scripts/setup.sh

app:
	PYTHON=$(PYTHON) bash scripts/setup.sh app
	$(PYTHON) app.py

lint:
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m ruff check .

# OMP_WAIT_POLICY=PASSIVE: torch's idle OpenMP threads sleep instead of spinning, which on 2 shared
# cores made the model tests 3-9x faster (measured by scripts/mutation_check.py's runs).
# Two pytest-xdist workers, a test file each at a time: the serial suite left a core idle about
# half the time (app and browser start-ups, subprocesses); 14:44 serial, 9:41-10:05 in two, 13:08 with a
# training run beside them (docs/benchmarks.md, "The test suite").
test: setup lint
	OMP_WAIT_POLICY=PASSIVE $(PYTHON) -m pytest -q -n 2 --dist loadfile

# Installs nothing (run `make setup` once first); leaves out the tests marked slow (real weights, a browser).
# Two pytest-xdist workers, a test file each at a time: one process keeps one core busy (137 s
# serial, 75 s in two, measured on these 2 cores).
test-fast: lint
	OMP_WAIT_POLICY=PASSIVE $(PYTHON) -m pytest -q -m "not slow" -n 2 --dist loadfile

bench: setup
	$(PYTHON) -m bench.bench_train

space:
	@test -n "$(SPACE)" || { echo "usage: make space SPACE=USER/NAME (a Hugging Face Space; HF_TOKEN or hf auth login)"; exit 2; }
	$(PYTHON) -m scripts.deploy_space $(SPACE)

# The shipped checkpoint from the two corpora: the words-only checkpoint's words, the voice from
# RAVDESS (scripts/build_default.py; it replaces only a checkpoints/default it built).
RAVDESS ?= ../shared/data/ravdess-speech
default-checkpoint: setup
	$(PYTHON) -m scripts.build_default --ravdess $(RAVDESS) --out checkpoints/default
