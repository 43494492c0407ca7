#!/usr/bin/env bash
# Run a command with throwaway PostgreSQL and MariaDB servers, e.g.
#
#   ./scripts/with-servers.sh cargo bench -p hosting-benches
#
# Exports HOSTING_TEST_POSTGRES_URL and HOSTING_TEST_MARIADB_URL, runs the
# command (argv as given, no shell), stops the servers and exits with the
# command's status.
set -euo pipefail

if (($# == 0)); then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

# shellcheck source=scripts/lib/servers.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/servers.sh"

trap hosting_stop_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

hosting_install_packages
hosting_make_temp_dir
hosting_start_postgres "${HOSTING_SERVERS_DIR}"
hosting_start_mariadb "${HOSTING_SERVERS_DIR}"
hosting_note_mysql
hosting_print_urls

status=0
"$@" || status=$?
exit "${status}"
