# replog — every target creates .venv and installs what it needs, so a fresh clone works.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= ./data

.PHONY: run demo test lint format typecheck pytest proto bench bench-storage bench-server bench-cluster bench-partitions bench-cluster-partitions bench-raft sim-soak fault-soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-dev

## run: start a single node with its data in ./data (gRPC 127.0.0.1:7400, HTTP 127.0.0.1:7401, Kafka 127.0.0.1:9092)
run: $(VENV)/.installed
	$(BIN)/replog serve --data-dir $(DATA_DIR) --kafka-addr 127.0.0.1:9092

## demo: a short tour of the embedded log, no server
demo: $(VENV)/.installed
	$(BIN)/python -m replog.demo $(DATA_DIR)-demo

## test: lint (ruff, import-linter), type-check and run the whole test suite (what CI runs)
test: lint typecheck pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports --no-logo

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy --strict src/replog

# Two pytest workers (pytest-xdist): most tests wait on servers, processes and timers, so
# two share CI's two cores well (about 8 minutes instead of 12). PYTEST_WORKERS=0: serial.
PYTEST_WORKERS ?= 2
pytest: $(VENV)/.installed-dev
	$(BIN)/pytest -q $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS))

## proto: regenerate src/replog/v1 from proto/replog/v1 (the generated code is committed)
proto: $(VENV)/.installed-dev
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m grpc_tools.protoc -Iproto \
		--python_out=src --grpc_python_out=src --mypy_out=src --mypy_grpc_out=src \
		proto/replog/v1/*.proto

## bench: replog against Redis Streams and NATS JetStream (installs missing peers; ~10 min)
bench: $(VENV)/.installed-bench
	$(BIN)/python bench/bench_peers.py

## bench-storage: storage engine benchmarks; results land in docs/benchmarks.md
bench-storage: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_storage.py

## bench-server: single-node server benchmarks (Producer, streams, HTTP, latency)
bench-server: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_server.py --records 300000 --runs 3 --idle-runs 3

## sim-soak: the long Raft simulation run (CI runs fewer of tests/sim's seeds: REPLOG_SIM_FULL)
sim-soak: $(VENV)/.installed-dev
	REPLOG_SIM_FULL=1 $(BIN)/pytest -q tests/sim
	$(BIN)/python -m tests.sim --soak --seeds 0-100000
	$(BIN)/python -m tests.sim --soak --seeds 0-20000 --nodes 5
	$(BIN)/python -m tests.sim --soak --seeds 0-20000 --profile churn
	$(BIN)/python -m tests.sim --soak --seeds 0-20000 --profile membership
	for p in default churn conf ghost; do \
		$(BIN)/python -m tests.sim.driver --soak --no-shrink --seeds 0-500 --profile $$p; done

## fault-soak: mixed faults on 5-process clusters, 50 seeds (~12 s each; CI runs seed 7)
fault-soak: $(VENV)/.installed-dev
	REPLOG_FAULT_SEEDS=1-50 $(BIN)/pytest -q tests/cluster/test_faults_mixed.py

## bench-cluster: three local nodes: throughput, commit latency, failover, join catch-up
bench-cluster: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_cluster.py --records 100000 --runs 3 --catchup-gib 1

## bench-partitions: one node holding a topic of 1,000 partitions: create time, RSS, fds, idle CPU
bench-partitions: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_partitions.py --partitions 1000 --runs 3 --idle-runs 3

## bench-cluster-partitions: three local nodes: 6 partitions vs 1 (throughput), 1,000 idle
## partitions (CPU, RSS, create time), kill -9 of the busiest leader (failover per partition)
bench-cluster-partitions: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_cluster_partitions.py --runs 3 --idle-runs 3

## bench-raft: the Raft core's commit throughput in the simulator (no faults)
bench-raft: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_raft.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache .grimp_cache
