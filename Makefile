# make app   set up and start the app on the default checkpoint
# make test  set up and run the tests (what CI runs)
PYTHON ?= python3

.PHONY: setup app test bench
setup:
	PYTHON=$(PYTHON) bash scripts/setup.sh

app: setup
	$(PYTHON) app.py

test: setup
	$(PYTHON) -m pytest -q

bench: setup
	$(PYTHON) bench/bench_train.py
