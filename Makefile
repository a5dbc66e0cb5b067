# Two commands on a fresh machine:
#   make train   sets up (venv, requirements, offline data) and trains config.json
#   make test    sets up and runs the test suite
# Variables: CONFIG=configs/x.json  ARGS="--epochs 3"  PYTHON=python3.11  VENV=.venv
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= config.json
ARGS ?=

.PHONY: setup data train test clean-runs

setup: $(VENV)/.installed data

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# Real Fashion-MNIST offline: Debian's dataset-fashion-mnist, when we are root with apt.
# Without it, data_loader/ looks in data/ and then tries torchvision's download.
data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$$(id -u)" = 0 ] \
	    && command -v apt-get >/dev/null; then \
	  apt-get update -q && apt-get install -y -q dataset-fashion-mnist; \
	fi

train: setup
	$(PY) train.py -c $(CONFIG) $(ARGS)

test: setup $(VENV)/.installed-dev
	$(PY) -m pytest -q

clean-runs:
	rm -rf saved/
