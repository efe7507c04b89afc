# Multigres operator: every command a developer or CI runs. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_TERM_COLOR := "never"

# Everything CI checks: format, lints, unit tests and the tests against a real local control plane.
test: binaries
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo build --workspace --bins
    MULTIGRES_E2E_BIN="$(bash e2e/build-binaries.sh | tail -n 1)" cargo test --workspace --no-fail-fast

# Only the pure, fast tests (no control plane).
unit:
    cargo test --workspace --lib

# The release artefact of the kubectl plugin: archive, .sha256 and krew manifest in dist/ (docs/operations.md).
dist release_url:
    cargo build --release -p kubectl-multigres
    RELEASE_URL="{{release_url}}" bash scripts/package-plugin.sh "$(just _target)/release/kubectl-multigres" dist

# Build (once) the control plane's Go binaries into ~/.cache/multigres-operator.
binaries:
    bash e2e/build-binaries.sh

# Regenerate the checked-in CRDs.
crds:
    cargo run -q -p multigres-api --bin crdgen deploy/crds/crds.yaml

# --- local control plane -------------------------------------------------------------------------

# Start a local control plane in the background; its kubeconfig is .demo/kubeconfig.
cluster-up: binaries
    MULTIGRES_E2E_BIN="$(bash e2e/build-binaries.sh | tail -n 1)" cargo run -q -p multigres-e2e --bin local-cluster -- up --detach
    @echo "export KUBECONFIG=$PWD/.demo/kubeconfig"

# Stop the local control plane started by cluster-up.
cluster-down:
    cargo run -q -p multigres-e2e --bin local-cluster -- down

# --- demo (charts, RBAC and the end-to-end suite: issue 8) ----------------------------------------

# A debug build: on 2 cores it compiles minutes faster than --release, and runs the demo just as well.
# Everything the demo starts keeps running (logs and kubeconfigs in .demo/) until `just demo-down`.

# The demo: control plane, operator via Helm, controllers under their charts' ServiceAccounts, the example converging.
demo: binaries
    cargo build --workspace --bins
    MULTIGRES_E2E_BIN="$(bash e2e/build-binaries.sh | tail -n 1)" "$(just _target)/debug/demo" up

# Stops what `just demo` left running: the controllers, the topology etcds and the control plane.
demo-down:
    cargo build -q -p multigres-e2e --bins
    "$(just _target)/debug/demo" down

# Cargo's target folder (CARGO_TARGET_DIR when set, as CI sets it).
_target:
    @cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'

# --- conformance (issue 14: docs/conformance.md) ---------------------------------------------------

# The generated pods run with the real Multigres binaries: SQL, replica read, failover, timed against `multigres cluster` (root).
conformance bin_dir=env_var_or_default("MULTIGRES_BIN_DIR", "") pg_root=env_var_or_default("MULTIGRES_PG_ROOT", ""): binaries
    #!/usr/bin/env bash
    set -euo pipefail
    [ -n "{{bin_dir}}" ] && [ -n "{{pg_root}}" ] || { echo "usage: just conformance <multigres-bin-dir> <pg-root> (or MULTIGRES_BIN_DIR, MULTIGRES_PG_ROOT)"; exit 2; }
    bins="conformance cluster-controller cell-controller topo-controller tablegroup-controller shard-controller status-aggregator kubectl-multigres"
    cargo build -q -p multigres-e2e --bins -p multigres-cluster-controller -p multigres-cell-controller -p multigres-topo-controller -p multigres-tablegroup-controller -p multigres-shard-controller -p multigres-status-aggregator -p kubectl-multigres
    target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    # Copied at once: a target folder shared with other checkouts may be relinked under a long run.
    mkdir -p .conformance-bin && (cd "$target/debug" && cp $bins "{{justfile_directory()}}/.conformance-bin/")
    MULTIGRES_BIN_DIR="$(realpath "{{bin_dir}}")" MULTIGRES_PG_ROOT="$(realpath "{{pg_root}}")" \
      MULTIGRES_E2E_BIN="$(bash e2e/build-binaries.sh | tail -n 1)" .conformance-bin/conformance

# --- chaos (issue 15: docs/reliability.md) ---------------------------------------------------------

# Many clusters edited while controllers, the API server and the topology etcd fail; checked against a clean run.
chaos seed="": binaries
    cargo build -q --workspace --bins
    MULTIGRES_E2E_BIN="$(bash e2e/build-binaries.sh | tail -n 1)" "$(just _target)/debug/chaos" "$(just _target)/debug" {{seed}}

# helm lint every chart, and build the charts' file:// dependencies.
charts-lint: binaries
    #!/usr/bin/env bash
    set -euo pipefail
    helm="$(bash e2e/build-binaries.sh | tail -n 1)/helm"
    for c in charts/multigres-*/ charts/multigres-operator/; do  # the umbrella last: it packs the others
      if grep -q '^dependencies:' "$c/Chart.yaml"; then "$helm" dependency build "$c" >/dev/null; fi
    done
    "$helm" lint charts/multigres-* 2>&1 | grep -v 'found symbolic link'

# --- bench (issue 9: docs/performance.md) ----------------------------------------------------------

# Benchmark on a private local control plane, controllers as release builds; `just bench large` for
# 1,000 Shards. Results in bench/results/<profile>.{json,md,png}. Not part of `just test`.
bench profile="quick" *args="": binaries
    cargo build --release --bins -p multigres-cluster-controller -p multigres-cell-controller -p multigres-topo-controller -p multigres-tablegroup-controller -p multigres-shard-controller -p multigres-status-aggregator -p multigres-dataplane-sim -p multigres-bench
    MULTIGRES_E2E_BIN="$(bash e2e/build-binaries.sh | tail -n 1)" "$(just _target)/release/multigres-bench" --profile {{profile}} {{args}}
    python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install -q matplotlib || echo "matplotlib not installable: no plot"
    python3 bench/plot.py bench/results/{{profile}}.json || true
