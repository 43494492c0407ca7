#!/usr/bin/env bash
# Schemathesis against a live panel: every operation of the served OpenAPI
# document, with data it allows and data it forbids, all checks on. Fails on
# any failure: the document must state every rule the server enforces.
#
#   ./scripts/schemathesis.sh                 # build the panel, run it, test it
#   HOSTING_ST_MAX_EXAMPLES=100 ./scripts/schemathesis.sh
#
# The panel runs on SQLite in a temp dir on a free port, with its rate limits
# raised (a fuzzer is one very busy client) and without a local node's web
# server or PHP. Schemathesis (pinned) lives in a venv under
# ~/.cache/hosting-sdk, installed from PyPI when missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/servers.sh
source scripts/lib/servers.sh

max_examples="${HOSTING_ST_MAX_EXAMPLES:-10}"
config="${PWD}/scripts/schemathesis.toml"
schemathesis="$(hosting_install_schemathesis)"

if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME:-}/.cargo/bin/cargo" ]]; then
    PATH="${HOME}/.cargo/bin:${PATH}"
fi
locked=()
[[ -f Cargo.lock ]] && locked=(--locked)
cargo build -p hosting-panel --bin hosting-panel "${locked[@]}" >&2
panel="${CARGO_TARGET_DIR:-${PWD}/target}/debug/hosting-panel"

work="$(mktemp -d "${TMPDIR:-/tmp}/hosting-st.XXXXXX")"
panel_pid=""
cleanup() {
    if [[ -n "${panel_pid}" ]]; then
        kill "${panel_pid}" 2>/dev/null || true
        wait "${panel_pid}" 2>/dev/null || true
    fi
    # HOSTING_ST_LOG=FILE keeps the panel's log (every request and its status).
    if [[ -n "${HOSTING_ST_LOG:-}" && -f "${work}/panel.log" ]]; then
        cp "${work}/panel.log" "${HOSTING_ST_LOG}"
    fi
    rm -rf "${work}"
}
trap cleanup EXIT

port="$(_hosting_free_port)"
base="http://127.0.0.1:${port}"
admin_email="admin@st.example"
admin_password="$(_hosting_password)"
HOSTING_PANEL_ADMIN_PASSWORD="${admin_password}" \
    HOSTING_PANEL_ADMIN_EMAIL="${admin_email}" \
    HOSTING_PANEL_NODE_NGINX="" \
    HOSTING_PANEL_NODE_PHP_SYSTEM_DIR="" \
    HOSTING_PANEL_LOGIN_ATTEMPTS_PER_MINUTE=100000 \
    HOSTING_PANEL_RATE_LIMIT_PER_CREDENTIAL=1000000 \
    HOSTING_PANEL_RATE_LIMIT_PER_TENANT=1000000 \
    HOSTING_PANEL_PASSWORD_WRITES_PER_TENANT=100000 \
    HOSTING_PANEL_PASSWORD_WRITES_PER_SOURCE=100000 \
    "${panel}" serve --listen "127.0.0.1:${port}" --data-dir "${work}/data" \
    >"${work}/panel.log" 2>&1 &
panel_pid=$!

for _ in $(seq 1 300); do
    if python3 - "${base}/health" <<'EOF' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=1)
EOF
        break
    fi
    if ! kill -0 "${panel_pid}" 2>/dev/null; then
        echo "error: the panel exited; its log:" >&2
        cat "${work}/panel.log" >&2
        exit 1
    fi
    sleep 0.1
done

# An operator API token with every permission, minted from a login session.
token="$(ST_BASE="${base}" ST_EMAIL="${admin_email}" ST_PASSWORD="${admin_password}" python3 - <<'EOF'
import json, os, urllib.request

base = os.environ["ST_BASE"]

def post(path, body, bearer=None):
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    if bearer:
        request.add_header("Authorization", "Bearer " + bearer)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)

password = os.environ["ST_PASSWORD"]
login = post("/api/v1/auth/login", {"email": os.environ["ST_EMAIL"], "password": password})
with urllib.request.urlopen(base + "/api/v1/openapi.json", timeout=30) as response:
    document = json.load(response)
permissions = document["components"]["schemas"]["PermissionName"]["enum"]
created = post("/api/v1/tokens", {"name": "schemathesis", "permissions": permissions,
                                  "current_password": password}, login["access_token"])
print(created["secret"])
EOF
)"

status=0
# Run from the temp dir: schemathesis keeps a cache in ./.schemathesis.
cd "${work}"
"${schemathesis}" --config-file "${config}" \
    run "${base}/api/v1/openapi.json" --url "${base}" \
    -H "Authorization: Bearer ${token}" \
    --checks all --max-examples "${max_examples}" --seed 1 \
    --generation-database none \
    --no-color --warnings off || status=$?
if ((status != 0)); then
    echo "schemathesis failed (status ${status}); the panel's last log lines:" >&2
    tail -n 40 "${work}/panel.log" >&2
fi
exit "${status}"
