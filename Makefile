# jepa-mpc: `make demo` (end-to-end job on the default task), `make bench-quick` (planner table) and `make test` (fast suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export XLA_FLAGS ?= --xla_cpu_multi_thread_eigen=true

.PHONY: demo test test-slow setup peers cluster mjx sysdeps clean bench-quick

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

# Offscreen rendering needs Mesa EGL (or OSMesa). Install only when missing, only as root.
sysdeps:
	@if ! ldconfig -p | grep -q 'libEGL.so.1' ; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Mesa EGL for offscreen rendering"; \
	    apt-get update -qq && apt-get install -y -qq libegl1 libgl1 libegl-mesa0 >/dev/null; \
	  else echo "warning: libEGL not found; pixel rendering will fail (install libegl1)"; fi; \
	fi

setup: sysdeps $(VENV)/.installed

# The optional `peers` extra (stable-worldmodel, CPU torch) for `jepa-mpc bench plan --peer stable-worldmodel`.
# Without a CPU torch wheel on pip's find-links path, point pip at PyTorch's CPU wheel index:
# make peers PEERS_PIP_ARGS='--extra-index-url <that index>'
peers: setup
	$(PY) -m pip install -q -e '.[dev,peers]' $(PEERS_PIP_ARGS)

# The optional `cluster` extra (Ray) for `jepa-mpc experiment run FILE --executor ray --address HEAD:6379`.
cluster: setup
	$(PY) -m pip install -q -e '.[dev,cluster]'

# The optional `mjx` extra (mujoco-mjx) for `--sim-backend mjx` (collection and the oracle's rollouts with MJX on
# JAX's devices). On a CUDA machine install JAX's CUDA build too: make mjx MJX_PIP_ARGS='jax[cuda12]'
mjx: setup
	$(PY) -m pip install -q -e '.[dev,mjx]' $(MJX_PIP_ARGS)

demo: setup
	$(PY) -m jepa_mpc.cli demo

# The TwoRoom-state planner table (every planner at 300 and 900 model evaluations per plan, CEM also at 9,000) and its plots.
bench-quick: setup
	$(PY) -m jepa_mpc.cli experiment run experiments/bench_quick.toml

# The suites also test the optional Ray executor and MJX backend: their extras are installed for them.
$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev,cluster,mjx]'
	@touch $@

test: setup $(VENV)/.installed-test
	$(PY) -m pytest -q -n auto --dist loadgroup -m "not slow"

test-slow: setup $(VENV)/.installed-test
	$(PY) -m pytest -q -m slow

# Large artifacts and the demo's results (they name the run they came from, which a clean removes; a
# retrained run would be refused as another eval's): the committed result files under results/ stay.
clean:
	rm -rf runs data .pytest_cache results/demo
