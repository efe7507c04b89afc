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
