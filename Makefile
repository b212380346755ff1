# Two commands: `make demo` and `make test`. Each bootstraps .venv on first use.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# Torch first, pinned to the local CPU wheel; any other spec pulls a CUDA build.
TORCH   := torch==2.13.0

.PHONY: demo test bench gpu clean

$(VPY):
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(VPY)
	$(VPY) -c "import torch" 2>/dev/null || $(VPY) -m pip install --quiet $(TORCH)
	$(VPY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VPY) -m birkhoff.demo
	OMP_NUM_THREADS=1 $(VPY) -m reference.lab.studies.sweep --preset demo --out runs/demo

# one worker per core (pytest-xdist); tests sharing a make gpu --quick run go to one worker (xdist_group);
# `make test HEAVY=1` adds the larger variants of some tests (marked heavy)
test: $(STAMP)
	$(VPY) -m pytest -q -p no:cacheprovider -n auto --dist loadgroup; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# every GPU check and benchmark in one run (about 8 min on a GPU; --quick on a CPU); tables in runs/gpu
gpu: $(STAMP)
	$(VPY) benchmarks/gpu_all.py --out runs/gpu

bench: $(STAMP)
	$(VPY) benchmarks/bench_sinkhorn.py
	$(VPY) benchmarks/bench_bvn.py
	$(VPY) benchmarks/bench_project.py
	$(VPY) benchmarks/bench_certify.py
	$(VPY) benchmarks/bench_monitor.py
	$(VPY) benchmarks/bench_mixers.py
	$(VPY) benchmarks/bench_token_mixing.py
	$(VPY) benchmarks/bench_scale.py

clean:
	rm -rf $(VENV) build *.egg-info
