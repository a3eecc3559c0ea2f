# Two commands set up everything: `make book` and `make test`.
# Both create .venv from requirements.lock when it is missing or out of date.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# nbgrader shells out to alembic: the environment's bin/ must be on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONHASHSEED := 0

A ?= rnn_bptt
ASSIGNMENTS := rnn_bptt gated_cells deep_birnn
DEBIAN_PACKAGES := chromium bubblewrap

.PHONY: help venv book test lint bench gpu-check release student lock secret collect autograde feedback grades grade written similarity report system-deps clean

help:
	@echo "make book        build the textbook into _build/html"
	@echo "make test        run the whole test suite (book build, nbgrader, browser)"
	@echo "make lint        ruff over the package, the grader, the tests and the scripts"
	@echo "make bench       benchmark the layers against torch.nn, loop peers and the GEMM floor"
	@echo "make gpu-check   CUDA tests and the benchmark on CUDA (says so without CUDA)"
	@echo "make release     regenerate the student notebooks and their self-check data in assignments/"
	@echo "make student     a student's environment in .venv-student (NumPy, no torch)"
	@echo "make lock        rewrite requirements.lock from .venv (name==version lines only)"
	@echo "make secret      create this course's secret (.course-secret), once, before grading"
	@echo "make collect     A=<assignment>: import the LMS download in downloaded/<a>/archive/"
	@echo "make autograde   A=<assignment>: grade the submissions that changed (sandboxed, parallel)"
	@echo "make grade       A=<assignment>: the same as make autograde"
	@echo "make written     A=<assignment>: which written answers still need grading"
	@echo "make feedback    A=<assignment>: HTML feedback, named for upload to the LMS"
	@echo "make grades      A=<assignment>: exports/<a>/canvas-grades.csv for the LMS import"
	@echo "make similarity  A=<assignment>: exports/<a>/similarity.html, similar answers ranked"
	@echo "make report      A=<assignment>: the class report from the gradebook"
	@echo "                 (each runs .venv/bin/rnn-course <command>; see rnn-course --help)"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml grader/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e . -e grader
	touch $@

# With RNN_COURSE_FIRST_SEED set, the book is built (and its cache kept) in
# _build/seeds-<first seed>, so that every page runs again on the new seeds.
book: venv
	$(VENV)/bin/jupyter-book build . --builder html \
	  $(if $(RNN_COURSE_FIRST_SEED),--path-output _build/seeds-$(RNN_COURSE_FIRST_SEED))

test: venv system-deps
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check rnn_course grader tests scripts
	$(VENV)/bin/ruff format --check rnn_course grader tests scripts

bench: venv
	$(PY) -m rnn_course.bench

# The device-parametrized tests on CUDA (padded and packed sequences, host synchronization),
# then the benchmark's tables on CUDA: cuDNN, the GEMM floor, the loop peers, packed sequences.
gpu-check: venv
	@if $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
	  $(PY) -m pytest -m cuda -q -p no:cacheprovider && \
	  $(PY) -m rnn_course.bench --device cuda --runs 3 && \
	  $(PY) -m rnn_course.bench --device cuda --runs 3 --compile --config 100,64,256,256; \
	else \
	  echo "CUDA is not available: nothing to check on this machine."; \
	fi

release: venv
	$(VENV)/bin/rnn-course release $(ASSIGNMENTS)

# A student's environment: NumPy, Matplotlib, JupyterLab and nbgrader at the lock's versions.
student:
	test -x .venv-student/bin/python || $(PYTHON) -m venv .venv-student
	.venv-student/bin/python -m pip install --quiet -c requirements.lock numpy matplotlib jupyterlab nbgrader

# Rewrite requirements.lock from the environment: name==version lines only (pip list never
# prints URLs or paths; local version labels such as +cpu are dropped).
lock: venv
	{ sed -n '1,3p' requirements.lock; \
	  $(PY) -m pip list --format=freeze --exclude-editable --exclude pip --exclude setuptools \
	    --exclude wheel | sed -E 's/\+[A-Za-z0-9.]+$$//'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

secret: venv
	$(VENV)/bin/rnn-course secret

collect autograde grade written feedback grades similarity report: venv
	$(VENV)/bin/rnn-course $@ $(A)

# Debian packages the tests need: a browser for the book and bubblewrap for the grader.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "missing Debian packages:$$missing (install them with: sudo apt-get install$$missing)"; exit 1; \
	  fi; \
	fi

clean:
	rm -rf _build .pytest_cache .ruff_cache
