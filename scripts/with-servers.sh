#!/usr/bin/env bash
# Run a command with throwaway PostgreSQL and MariaDB servers, e.g.
#
#   ./scripts/with-servers.sh cargo bench -p hosting-benches
#
# Exports HOSTING_TEST_POSTGRES_URL and HOSTING_TEST_MARIADB_URL, the
# web-server and PHP-FPM binaries (HOSTING_TEST_NGINX, HOSTING_TEST_APACHE,
# HOSTING_TEST_PHP_FPM_82, HOSTING_TEST_PHP_FPM_84_{BIN,INI,SCAN_DIR}, HOSTING_TEST_CADDY),
# HOSTING_TEST_SYSTEM_USERS and, as root, HOSTING_TEST_SYSTEM_SERVICES (the tests
# that drive the machine's own nginx, apache2 and php8.2-fpm services on port 80),
# runs the command (argv as given, no shell), stops the servers and exits with the
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
# Missing users or PHP 8.4 leave their variables unset: those tests then skip
# (or fail under CI=true), the rest still run.
hosting_export_binaries || true
hosting_create_test_users || true
hosting_export_system_services || true
hosting_setup_php84 || true
hosting_make_temp_dir
hosting_start_postgres "${HOSTING_SERVERS_DIR}"
hosting_start_mariadb "${HOSTING_SERVERS_DIR}"
hosting_note_mysql
hosting_print_urls
hosting_print_binaries

status=0
"$@" || status=$?
exit "${status}"
