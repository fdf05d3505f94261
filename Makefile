# raftkv developer commands. Every target sets up .venv itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

SEED ?=
SEEDS ?= 200
NODES ?= 3

.PHONY: all venv run test lint proto sim bench-storage bench bench-trace clean jepsen jepsen-matrix mutation-suite

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,jepsen]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m raftkv.devcluster --nodes $(NODES)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check raftkv tests jepsen examples
	$(BIN)/ruff format --check raftkv tests jepsen examples

# etcd's gRPC wire types: regenerate raftkv/etcdpb/*_pb2.py(i) from proto/raftkv/etcdpb
# (commit the result; tests/unit/test_etcdpb.py checks it matches). Message modules only:
# the server builds its own grpclib handler table.
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. proto/raftkv/etcdpb/*.proto

# Deterministic Raft simulation: `make sim SEED=1234` replays one seed,
# `make sim SEEDS=100000` runs a campaign and exits non-zero on any violation.
sim: $(STAMP)
	$(BIN)/python -m raftkv.sim $(if $(SEED),--seed $(SEED),--seeds $(SEEDS))

bench-storage: $(STAMP)
	$(BIN)/python -m raftkv.storage.bench

# Cluster benchmark: puts, linearizable and serializable gets at 1/16/64 clients.
# BENCH_DB=both also runs a 3-node etcd (Debian's etcd-server) the same way.
BENCH_DB ?= raftkv
bench: $(STAMP)
	$(BIN)/python -m raftkv.bench --db $(BENCH_DB)

# Where one put's time goes: per-phase p50/p99 of 1,000 puts at 1 client, sent to
# the leader and to a follower (RAFTKV_TRACE=1; raftkv/node/trace.py).
bench-trace: $(STAMP)
	$(BIN)/python -m raftkv.bench_trace

# Jepsen-style fault injection on real processes (jepsen/). `make jepsen` runs the
# standard suite (register, set x none/kill/pause/partition; register x link faults;
# fenced-lock, watch and lease under faults; then the positive controls, stale reads
# and the unfenced lock, which must come out invalid) on 3 nodes and prints a results
# table; reports land in store/<workload>-<nemesis>-<time>-seed<K>/.
# `make jepsen DB=etcd` runs the same suite against the real etcd on PATH.
JEPSEN_TIME ?= 20
DB ?= raftkv
jepsen: $(STAMP)
	$(BIN)/python -m jepsen suite --db $(DB) --nodes 3 --time $(JEPSEN_TIME) --seed $(or $(SEED),1)

# The long matrix: every workload x every nemesis x 3 and 5 nodes x MATRIX_SEEDS seeds,
# 25 s per cell at an offered 500 ops/s from 40 clients, two cells at a time (each
# still above 200 ops/s on 2 cores); resumable (cells under store/matrix/cells).
# DB=both adds etcd's cells and a raftkv-vs-etcd availability/latency table.
MATRIX_SEEDS ?= 3
MATRIX_JOBS ?= 2
jepsen-matrix: $(STAMP)
	$(BIN)/python -m jepsen matrix --db $(DB) --seeds $(MATRIX_SEEDS) --time 25 --rate 500 \
		--concurrency 40 --jobs $(MATRIX_JOBS)

# Each planted raftkv bug in its designated scenario (5 seeds) plus 20 unmutated controls.
mutation-suite: $(STAMP)
	$(BIN)/python -m jepsen mutation-suite

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
