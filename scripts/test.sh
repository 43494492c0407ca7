#!/usr/bin/env bash
# Full local/CI check: rustfmt, clippy and all tests against throwaway
# PostgreSQL and MariaDB servers on 127.0.0.1, then schemathesis against a
# live panel (scripts/schemathesis.sh).
#
#   ./scripts/test.sh                  # everything
#   ./scripts/test.sh -p hosting-db    # extra args go to `cargo test`
#
# Exports HOSTING_TEST_POSTGRES_URL and HOSTING_TEST_MARIADB_URL, the
# web-server and PHP-FPM binaries, HOSTING_TEST_SYSTEM_USERS and, as root,
# HOSTING_TEST_SYSTEM_SERVICES for the tests (see scripts/with-servers.sh); the
# servers are stopped and their files removed on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/servers.sh
source scripts/lib/servers.sh

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-always}"

# --- Rust toolchain ---------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    if [[ -x "${HOME:-}/.cargo/bin/cargo" ]]; then
        PATH="${HOME}/.cargo/bin:${PATH}"
        export PATH
    else
        echo "error: cargo not found on PATH or in ~/.cargo/bin; install Rust (https://rustup.rs)" >&2
        exit 1
    fi
fi
for component in fmt clippy; do
    if ! cargo "${component}" --version >/dev/null 2>&1; then
        echo "error: 'cargo ${component}' is not available; run: rustup component add ${component/fmt/rustfmt}" >&2
        exit 1
    fi
done

locked=()
if [[ -f Cargo.lock ]]; then
    locked=(--locked)
else
    echo "note: no Cargo.lock, running without --locked" >&2
fi

# `cargo test --workspace -p X` ignores -p, so drop --workspace when the
# caller selects packages; the selection also applies to the doc tests.
scope=(--workspace)
packages=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    arg="${args[i]}"
    [[ "${arg}" == -- ]] && break
    case "${arg}" in
    -p | --package)
        scope=()
        if ((i + 1 < ${#args[@]})); then
            packages+=("${arg}" "${args[i + 1]}")
        fi
        ;;
    -p?* | --package=*)
        scope=()
        packages+=("${arg}")
        ;;
    esac
done
if ((${#packages[@]} == 0)); then
    packages=(--workspace)
fi

# --- step runner --------------------------------------------------------------
now_us() { printf '%s\n' "${EPOCHREALTIME//[!0-9]/}"; }
fmt_secs() { printf '%d.%01ds' "$(($1 / 1000000))" "$((($1 % 1000000) / 100000))"; }

if [[ "${CARGO_TERM_COLOR}" != never && -z "${NO_COLOR:-}" ]]; then
    BOLD=$'\033[1m' RED=$'\033[1;31m' GREEN=$'\033[1;32m' RESET=$'\033[0m'
else
    BOLD="" RED="" GREEN="" RESET=""
fi

START_US="$(now_us)"
SUMMARY=()

step() {
    local name="$1" t0 t1 status=0
    shift
    printf '\n%s==> %s%s\n    $ %s\n' "${BOLD}" "${name}" "${RESET}" "$*"
    t0="$(now_us)"
    "$@" || status=$?
    t1="$(now_us)"
    if ((status == 0)); then
        SUMMARY+=("ok      $(fmt_secs $((t1 - t0)))  ${name}")
        printf '%s<== %s: ok (%s)%s\n' "${BOLD}" "${name}" "$(fmt_secs $((t1 - t0)))" "${RESET}"
    else
        SUMMARY+=("FAILED  $(fmt_secs $((t1 - t0)))  ${name}")
        printf '%s<== %s: FAILED with status %d (%s)%s\n' \
            "${RED}" "${name}" "${status}" "$(fmt_secs $((t1 - t0)))" "${RESET}"
    fi
    return "${status}"
}

finish() {
    local status=$?
    hosting_stop_servers
    if ((${#SUMMARY[@]})); then
        printf '\n%s==> summary (total %s)%s\n' \
            "${BOLD}" "$(fmt_secs $(($(now_us) - START_US)))" "${RESET}"
        printf '    %s\n' "${SUMMARY[@]}"
    fi
    if ((status == 0)); then
        printf '%sall checks passed%s\n' "${GREEN}" "${RESET}"
    else
        printf '%schecks failed (status %d)%s\n' "${RED}" "${status}" "${RESET}"
    fi
    return "${status}"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- servers ------------------------------------------------------------------
step "install server packages" hosting_install_packages
# Missing users or PHP 8.4 leave their variables unset: those tests then skip
# (or fail under CI=true), the rest still run.
step "web-server and PHP binaries" hosting_export_binaries || true
step "test Unix users" hosting_create_test_users || true
step "system services (as root)" hosting_export_system_services || true
step "PHP 8.4 from trixie (cached)" hosting_setup_php84 || true
hosting_make_temp_dir
step "start PostgreSQL" hosting_start_postgres "${HOSTING_SERVERS_DIR}"
step "start MariaDB" hosting_start_mariadb "${HOSTING_SERVERS_DIR}"
hosting_note_mysql
hosting_print_urls
hosting_print_binaries

# --- checks -------------------------------------------------------------------
step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets "${locked[@]}" -- -D warnings
step "cargo test" cargo test "${scope[@]}" --all-targets "${locked[@]}" "$@"
step "cargo test --doc" cargo test "${packages[@]}" --doc "${locked[@]}"
# The API document against the live panel (SQLite): schema-valid requests
# accepted, schema-violating ones refused, no 5xx. Whole-workspace runs only.
if ((${#scope[@]})); then
    step "schemathesis (API document vs. panel)" ./scripts/schemathesis.sh
fi
