# shellcheck shell=bash
#
# Throwaway database servers for the real-server tests.
#
# Source this file from a bash script, then:
#
#   hosting_install_packages            # apt-get install what is missing (root only)
#   hosting_make_temp_dir               # sets HOSTING_SERVERS_DIR (removed again at stop)
#   trap hosting_stop_servers EXIT
#   hosting_start_postgres "$HOSTING_SERVERS_DIR"   # exports HOSTING_TEST_POSTGRES_URL
#   hosting_start_mariadb "$HOSTING_SERVERS_DIR"    # exports HOSTING_TEST_MARIADB_URL
#                                       # both serve TLS too (and plain connections);
#                                       # HOSTING_TEST_DB_CA is the CA file that signed them
#   hosting_note_mysql                  # HOSTING_TEST_MYSQL_URL is left unset
#   hosting_print_urls                  # prints the URLs, passwords masked
#   hosting_export_binaries             # exports HOSTING_TEST_{NGINX,APACHE,PHP_FPM_82,CADDY}
#   hosting_create_test_users           # exports HOSTING_TEST_SYSTEM_USERS (root only)
#   hosting_setup_php84                 # exports HOSTING_TEST_PHP_FPM_84_{BIN,INI,SCAN_DIR}
#   hosting_export_system_services      # exports HOSTING_TEST_SYSTEM_SERVICES (root only)
#   ...
#   hosting_stop_servers                # idempotent, safe from a trap
#
# All messages go to stderr so that the stdout of wrapped commands stays clean.
# Passwords are never printed and never passed on a command line.

# Packages that provide every binary in HOSTING_REQUIRED_COMMANDS.
HOSTING_APT_PACKAGES=(
    postgresql mariadb-server mariadb-client
    nginx apache2 php8.2-fpm php8.2-cli php8.2-mysql caddy openssl debootstrap patchelf wrk
    systemd python3-venv
)

# Binaries the harness needs.  "pg:NAME" means NAME in the newest
# /usr/lib/postgresql/*/bin directory; "php:MODULE" is a module php-fpm8.2 -m
# must list (the end-to-end sites talk to MariaDB through PDO); "py:MODULE" is
# a module python3 must import (ensurepip: `python3 -m venv` for schemathesis);
# everything else is looked up on PATH.
HOSTING_REQUIRED_COMMANDS=(
    pg:initdb pg:pg_ctl pg:postgres psql
    mariadbd mariadb-install-db mariadb-admin mariadb
    nginx apache2 php-fpm8.2 php:pdo_mysql caddy openssl debootstrap patchelf wrk
    systemd-analyze python3 py:ensurepip
)

# Throwaway Unix accounts that generated PHP-FPM pools run as: php-fpm -t
# refuses a pool whose user does not exist.
HOSTING_TEST_USERS=(hostingt1 hostingt2)

# Server binaries live in /usr/sbin, which is not on a normal user's PATH.
case ":${PATH}:" in *:/usr/sbin:*) ;; *) PATH="${PATH}:/usr/sbin" ;; esac
case ":${PATH}:" in *:/sbin:*) ;; *) PATH="${PATH}:/sbin" ;; esac
export PATH

# Internal state (not exported).
HOSTING_SERVERS_DIR="${HOSTING_SERVERS_DIR:-}"
_HOSTING_OWN_TEMP_DIR=""
_HOSTING_PG_BIN=""
_HOSTING_PG_DATA=""
_HOSTING_MARIADB_PID=""
_HOSTING_MARIADB_SOCKET=""
_HOSTING_MARIADB_LOG=""
_HOSTING_USED_PORTS=()
_HOSTING_TLS_DIR=""

_hosting_log() {
    printf '[servers] %s\n' "$*" >&2
}

_hosting_is_root() {
    [[ "$(id -u)" == 0 ]]
}

# Print the newest /usr/lib/postgresql/*/bin directory that has initdb.
_hosting_pg_bindir() {
    local dir best="" best_ver=-1 ver
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "${dir}/initdb" ]] || continue
        ver="${dir#/usr/lib/postgresql/}"
        ver="${ver%%/*}"
        ver="${ver%%.*}"
        [[ "${ver}" =~ ^[0-9]+$ ]] || continue
        if ((ver > best_ver)); then
            best_ver="${ver}"
            best="${dir}"
        fi
    done
    [[ -n "${best}" ]] || return 1
    printf '%s\n' "${best}"
}

# Print the names of the required commands that cannot be found.
_hosting_missing_commands() {
    local spec pgbin
    pgbin="$(_hosting_pg_bindir || true)"
    for spec in "${HOSTING_REQUIRED_COMMANDS[@]}"; do
        case "${spec}" in
        pg:*)
            if [[ -z "${pgbin}" || ! -x "${pgbin}/${spec#pg:}" ]]; then
                printf '%s\n' "${spec#pg:}"
            fi
            ;;
        py:*)
            if ! python3 -c "import ${spec#py:}" >/dev/null 2>&1; then
                printf '%s\n' "${spec}"
            fi
            ;;
        php:*)
            if ! command -v php-fpm8.2 >/dev/null 2>&1 \
                || ! php-fpm8.2 -m 2>/dev/null | grep -ix "${spec#php:}" >/dev/null; then
                printf '%s\n' "${spec}"
            fi
            ;;
        *)
            command -v "${spec}" >/dev/null 2>&1 || printf '%s\n' "${spec}"
            ;;
        esac
    done
}

# Install the server packages when any needed binary is missing.
hosting_install_packages() {
    local missing pkg need_update=0
    missing="$(_hosting_missing_commands)"
    if [[ -z "${missing}" ]]; then
        return 0
    fi
    _hosting_log "missing: ${missing//$'\n'/ }"
    if ! _hosting_is_root; then
        _hosting_log "not running as root, cannot install packages; please run:"
        _hosting_log "  sudo apt-get install -y --no-install-recommends ${HOSTING_APT_PACKAGES[*]}"
        return 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        _hosting_log "apt-get not found; install these packages by hand: ${HOSTING_APT_PACKAGES[*]}"
        return 1
    fi
    for pkg in "${HOSTING_APT_PACKAGES[@]}"; do
        if ! apt-cache show "${pkg}" >/dev/null 2>&1; then
            need_update=1
            break
        fi
    done
    if ((need_update)); then
        _hosting_log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || return 1
    fi
    _hosting_log "apt-get install ${HOSTING_APT_PACKAGES[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${HOSTING_APT_PACKAGES[@]}" >&2; then
        if ((need_update)); then
            return 1
        fi
        # Stale package lists give 404s: refresh once and retry.
        _hosting_log "install failed; retrying after apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${HOSTING_APT_PACKAGES[@]}" >&2 || return 1
    fi
    missing="$(_hosting_missing_commands)"
    if [[ -n "${missing}" ]]; then
        _hosting_log "still missing after install: ${missing//$'\n'/ }"
        return 1
    fi
}

# The schemathesis version scripts/schemathesis.sh runs (PyPI), pinned so a
# new release cannot change what the API is held to.
HOSTING_SCHEMATHESIS_VERSION="4.32.5"

# Print the path of a schemathesis executable of the pinned version, installed
# into a venv under ~/.cache/hosting-sdk from PyPI when missing.
hosting_install_schemathesis() {
    local venv="${XDG_CACHE_HOME:-${HOME}/.cache}/hosting-sdk/st-venv"
    local want="${HOSTING_SCHEMATHESIS_VERSION}" have=""
    if [[ -x "${venv}/bin/schemathesis" ]]; then
        have="$("${venv}/bin/schemathesis" --version 2>/dev/null || true)"
    fi
    if [[ "${have}" != *"version ${want}" ]]; then
        _hosting_log "installing schemathesis ${want} into ${venv}"
        if [[ ! -x "${venv}/bin/pip" ]]; then
            rm -rf -- "${venv}"
            python3 -m venv "${venv}" >&2 || return 1
        fi
        "${venv}/bin/pip" install -q --disable-pip-version-check \
            "schemathesis==${want}" >&2 || return 1
    fi
    printf '%s\n' "${venv}/bin/schemathesis"
}

# Random alphanumeric (hex) password; safe in URLs without encoding.
_hosting_password() {
    local pw
    pw="$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')" || return 1
    [[ "${pw}" =~ ^[0-9a-f]{40}$ ]] || return 1
    printf '%s\n' "${pw}"
}

# Print a free TCP port on 127.0.0.1 that this shell has not handed out yet.
_hosting_free_port() {
    local port attempt used ok
    for attempt in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        port=""
        if command -v python3 >/dev/null 2>&1; then
            port="$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null || true)"
        fi
        if [[ ! "${port}" =~ ^[0-9]+$ ]]; then
            port=$((20000 + (RANDOM * 32768 + RANDOM) % 30000))
            # Something answers there: in use.
            if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
                continue
            fi
        fi
        ok=1
        for used in "${_HOSTING_USED_PORTS[@]}"; do
            [[ "${used}" == "${port}" ]] && ok=0
        done
        if ((ok)); then
            printf '%s\n' "${port}"
            return 0
        fi
        : "${attempt}"
    done
    _hosting_log "could not find a free TCP port"
    return 1
}

# Create the temp dir for the servers; sets HOSTING_SERVERS_DIR.  The
# directory is removed again by hosting_stop_servers.
hosting_make_temp_dir() {
    local base dir
    for base in "${TMPDIR:-/tmp}" /tmp; do
        dir="$(mktemp -d "${base%/}/hosting-test.XXXXXX" 2>/dev/null)" || continue
        chmod 0755 "${dir}" || {
            rmdir "${dir}"
            continue
        }
        if _hosting_is_root; then
            # The server users must be able to reach the directory.
            if ! runuser -u postgres -- test -x "${dir}" 2>/dev/null ||
                ! runuser -u mysql -- test -x "${dir}" 2>/dev/null; then
                rmdir "${dir}"
                continue
            fi
        fi
        HOSTING_SERVERS_DIR="${dir}"
        _HOSTING_OWN_TEMP_DIR="${dir}"
        return 0
    done
    _hosting_log "could not create a temp dir reachable by the server users"
    return 1
}

# Run a PostgreSQL tool as the right user (postgres when we are root).
_hosting_pg_run() {
    local tool="$1"
    shift
    if _hosting_is_root; then
        (cd / && runuser -u postgres -- "${_HOSTING_PG_BIN}/${tool}" "$@")
    else
        "${_HOSTING_PG_BIN}/${tool}" "$@"
    fi
}

# _hosting_tls_files DIR: a throwaway CA and a server certificate it signed for
# 127.0.0.1 and localhost, in DIR/tls (made once, shared by both servers); exports
# HOSTING_TEST_DB_CA.  On failure the servers start without TLS and the variable
# stays unset (the TLS tests then skip, or fail under CI=true).
_hosting_tls_files() {
    local tls="${1%/}/tls" out
    if [[ -n "${_HOSTING_TLS_DIR}" ]]; then
        return 0
    fi
    out="${tls}/openssl.out"
    mkdir -p "${tls}" && chmod 0755 "${tls}" || return 1
    printf '%s\n' \
        'basicConstraints = critical, CA:FALSE' \
        'keyUsage = critical, digitalSignature, keyEncipherment' \
        'extendedKeyUsage = serverAuth' \
        'subjectAltName = IP:127.0.0.1, DNS:localhost' >"${tls}/server.ext" || return 1
    if ! {
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "${tls}/ca.key" -out "${tls}/ca.pem" -days 2 \
            -subj '/CN=hosting-sdk throwaway test CA' \
            -addext 'basicConstraints = critical, CA:TRUE' \
            -addext 'keyUsage = critical, keyCertSign, cRLSign' &&
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -keyout "${tls}/server.key" -out "${tls}/server.csr" -subj '/CN=localhost' &&
            openssl x509 -req -in "${tls}/server.csr" -CA "${tls}/ca.pem" \
                -CAkey "${tls}/ca.key" -CAcreateserial -days 2 \
                -extfile "${tls}/server.ext" -out "${tls}/server.pem"
    } >"${out}" 2>&1; then
        _hosting_log "openssl could not make the test certificates; servers start without TLS:"
        cat "${out}" >&2
        return 1
    fi
    chmod 0644 "${tls}/ca.pem" "${tls}/server.pem" || return 1
    chmod 0600 "${tls}/ca.key" "${tls}/server.key" || return 1
    _HOSTING_TLS_DIR="${tls}"
    export HOSTING_TEST_DB_CA="${tls}/ca.pem"
}

# _hosting_tls_key DIR OWNER: copy the server key into DIR, readable by OWNER
# only (both servers refuse a key others can read); prints its path.
_hosting_tls_key() {
    local dir="$1" owner="$2" key="$1/server.key"
    install -m 0600 "${_HOSTING_TLS_DIR}/server.key" "${key}" || return 1
    if _hosting_is_root; then
        chown "${owner}:${owner}" "${key}" || return 1
    fi
    printf '%s\n' "${key}"
}

# hosting_start_postgres DIR: start a throwaway PostgreSQL on 127.0.0.1
# with its files in DIR/postgres; exports HOSTING_TEST_POSTGRES_URL.
hosting_start_postgres() {
    local dir="${1:?hosting_start_postgres: DIR required}"
    local pgdir data log out pwfile password port attempt started=0

    _HOSTING_PG_BIN="$(_hosting_pg_bindir)" || {
        _hosting_log "PostgreSQL not found under /usr/lib/postgresql/*/bin"
        return 1
    }
    pgdir="${dir%/}/postgres"
    data="${pgdir}/data"
    log="${pgdir}/postgres.log"
    out="${pgdir}/pg_ctl.out"
    pwfile="${pgdir}/pwfile"

    mkdir -p "${pgdir}" || return 1
    chmod 0700 "${pgdir}" || return 1
    if _hosting_is_root; then
        chown postgres:postgres "${pgdir}" || return 1
    fi

    password="$(_hosting_password)" || return 1
    (umask 077 && printf '%s\n' "${password}" >"${pwfile}") || return 1
    if _hosting_is_root; then
        chown postgres:postgres "${pwfile}" || return 1
    fi

    _hosting_log "initdb ($(basename "$(dirname "${_HOSTING_PG_BIN}")"))"
    # Remember the data dir before initdb so a half-way start is cleaned up.
    _HOSTING_PG_DATA="${data}"
    if ! _hosting_pg_run initdb -D "${data}" -U hosting \
        --auth-host=scram-sha-256 --auth-local=trust --pwfile="${pwfile}" \
        --encoding=UTF8 --locale=C.UTF-8 --no-sync >"${out}" 2>&1; then
        rm -f "${pwfile}"
        _hosting_log "initdb failed:"
        cat "${out}" >&2
        return 1
    fi
    rm -f "${pwfile}"

    # Every statement is logged and counted, so tests can prove no password reaches a log.
    local pg_logging="-c log_statement=all -c log_min_duration_statement=0"
    pg_logging+=" -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
    # TLS besides plain connections (pg_hba's "host" lines take both).
    local pg_tls="" key
    if _hosting_tls_files "${dir}" && key="$(_hosting_tls_key "${pgdir}" postgres)"; then
        pg_tls="-c ssl=on -c ssl_cert_file=${_HOSTING_TLS_DIR}/server.pem -c ssl_key_file=${key}"
    fi
    for attempt in 1 2 3; do
        port="$(_hosting_free_port)" || return 1
        _HOSTING_USED_PORTS+=("${port}")
        rm -f "${log}"
        if _hosting_pg_run pg_ctl -D "${data}" -w -t 60 -l "${log}" -o \
            "-c listen_addresses=127.0.0.1 -p ${port} -c unix_socket_directories=${pgdir} -c fsync=off -c max_connections=200 ${pg_logging} ${pg_tls}" \
            start >"${out}" 2>&1; then
            started=1
            break
        fi
        # A port grabbed by someone else since we probed it: try another.
        if [[ -f "${data}/postmaster.pid" ]] ||
            ! grep -qi 'address already in use' "${log}" 2>/dev/null; then
            break
        fi
        _hosting_log "port ${port} taken, retrying (attempt ${attempt})"
    done
    if ((!started)); then
        _hosting_log "PostgreSQL failed to start:"
        cat "${out}" >&2
        [[ -f "${log}" ]] && cat "${log}" >&2
        return 1
    fi

    export HOSTING_TEST_POSTGRES_URL="postgres://hosting:${password}@127.0.0.1:${port}/postgres"
    export HOSTING_TEST_POSTGRES_LOG="${log}"
    _hosting_log "PostgreSQL listening on 127.0.0.1:${port}"
}

# Run the mariadb client as the server's socket-authenticated admin user.
_hosting_mariadb_admin_user() {
    if _hosting_is_root; then
        printf 'root\n'
    else
        id -un
    fi
}

# Is the mariadbd child still alive?  Bash reaps its own background
# children, so kill -0 is reliable for them.
_hosting_mariadb_alive() {
    [[ -n "${_HOSTING_MARIADB_PID}" ]] && kill -0 "${_HOSTING_MARIADB_PID}" 2>/dev/null
}

# hosting_start_mariadb DIR: start a throwaway MariaDB on 127.0.0.1 with its
# files in DIR/mariadb; exports HOSTING_TEST_MARIADB_URL.
hosting_start_mariadb() {
    local dir="${1:?hosting_start_mariadb: DIR required}"
    local mdir data sock pidfile log out password port attempt admin
    local -a user_opt=()
    local i ready=0

    mdir="${dir%/}/mariadb"
    data="${mdir}/data"
    sock="${mdir}/mariadb.sock"
    pidfile="${mdir}/mariadb.pid"
    log="${mdir}/mariadb.log"
    out="${mdir}/install-db.out"
    local dout="${mdir}/mariadbd.out"
    admin="$(_hosting_mariadb_admin_user)"

    mkdir -p "${mdir}" || return 1
    chmod 0750 "${mdir}" || return 1
    if _hosting_is_root; then
        chown mysql:mysql "${mdir}" || return 1
        user_opt=(--user=mysql)
    fi
    _HOSTING_MARIADB_SOCKET="${sock}"
    _HOSTING_MARIADB_LOG="${log}"

    _hosting_log "mariadb-install-db"
    if ! mariadb-install-db --no-defaults "${user_opt[@]}" --datadir="${data}" \
        --auth-root-authentication-method=socket --skip-test-db \
        >"${out}" 2>&1 </dev/null; then
        _hosting_log "mariadb-install-db failed:"
        cat "${out}" >&2
        return 1
    fi

    # TLS besides plain connections (require_secure_transport stays off).
    local -a tls_opt=()
    local key
    if _hosting_tls_files "${dir}" && key="$(_hosting_tls_key "${mdir}" mysql)"; then
        tls_opt=(--ssl-ca="${_HOSTING_TLS_DIR}/ca.pem" --ssl-cert="${_HOSTING_TLS_DIR}/server.pem"
            --ssl-key="${key}")
    fi

    for attempt in 1 2 3; do
        port="$(_hosting_free_port)" || return 1
        _HOSTING_USED_PORTS+=("${port}")
        rm -f "${log}"
        mariadbd --no-defaults "${user_opt[@]}" --datadir="${data}" \
            --socket="${sock}" --pid-file="${pidfile}" \
            --bind-address=127.0.0.1 --port="${port}" --skip-name-resolve \
            --log-error="${log}" --innodb-flush-log-at-trx-commit=0 \
            --general-log=1 --general-log-file="${mdir}/general.log" \
            --slow-query-log=1 --slow-query-log-file="${mdir}/slow.log" --long-query-time=0 \
            --log-bin="${mdir}/binlog" --server-id=1 \
            --max-connections=300 "${tls_opt[@]}" </dev/null >>"${dout}" 2>&1 &
        _HOSTING_MARIADB_PID=$!

        for ((i = 0; i < 300; i++)); do
            if mariadb-admin --no-defaults --socket="${sock}" -u"${admin}" \
                ping >/dev/null 2>&1; then
                ready=1
                break
            fi
            _hosting_mariadb_alive || break
            sleep 0.1
        done
        ((ready)) && break
        if _hosting_mariadb_alive; then
            break # timed out while running: give up below
        fi
        wait "${_HOSTING_MARIADB_PID}" 2>/dev/null || true
        _HOSTING_MARIADB_PID=""
        if ! grep -qiE 'address already in use|bind on tcp/ip port' "${log}" 2>/dev/null; then
            break
        fi
        _hosting_log "port ${port} taken, retrying (attempt ${attempt})"
    done
    if ((!ready)); then
        _hosting_log "MariaDB failed to start (log follows):"
        [[ -f "${dout}" ]] && cat "${dout}" >&2
        [[ -f "${log}" ]] && cat "${log}" >&2
        return 1
    fi

    password="$(_hosting_password)" || return 1
    # SQL goes through stdin so the password never shows up in argv.
    if ! mariadb --no-defaults --socket="${sock}" -u"${admin}" >&2 <<SQL; then
CREATE USER 'hosting'@'127.0.0.1' IDENTIFIED BY '${password}';
CREATE USER 'hosting'@'localhost' IDENTIFIED BY '${password}';
GRANT ALL PRIVILEGES ON *.* TO 'hosting'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'hosting'@'localhost' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
        _hosting_log "could not create the MariaDB user 'hosting'"
        return 1
    fi

    export HOSTING_TEST_MARIADB_URL="mysql://hosting:${password}@127.0.0.1:${port}/mysql"
    # Every log the server keeps (general, slow with every statement, binary), for tests that
    # prove no password reaches one.
    export HOSTING_TEST_MARIADB_LOG_DIR="${mdir}"
    _hosting_log "MariaDB listening on 127.0.0.1:${port}"
}

# MySQL proper is not packaged on Debian 12 (mysqld there is MariaDB), so
# HOSTING_TEST_MYSQL_URL is never set by this harness.
hosting_note_mysql() {
    if [[ -n "${HOSTING_TEST_MYSQL_URL:-}" ]]; then
        _hosting_log "HOSTING_TEST_MYSQL_URL was provided by the caller; using it as is"
        return 0
    fi
    _hosting_log "MySQL is not available (only MariaDB); HOSTING_TEST_MYSQL_URL is unset," \
        "so MySQL is tested only through the shared MySQL/MariaDB driver"
}

# Print a URL with its password replaced by ***.
_hosting_mask_url() {
    local url="$1"
    if [[ "${url}" =~ ^([A-Za-z0-9+.-]+://[^:/@]*):[^@]*@(.*)$ ]]; then
        printf '%s:***@%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
    else
        printf '%s\n' "${url}"
    fi
}

# Print the exported server URLs with the passwords masked.
hosting_print_urls() {
    local var
    for var in HOSTING_TEST_POSTGRES_URL HOSTING_TEST_MARIADB_URL HOSTING_TEST_MYSQL_URL \
        HOSTING_TEST_DB_CA; do
        if [[ -n "${!var:-}" ]]; then
            _hosting_log "${var}=$(_hosting_mask_url "${!var}")"
        else
            _hosting_log "${var} (unset)"
        fi
    done
}

# --- web servers and PHP ------------------------------------------------------

# Export the nginx, Apache, PHP-FPM 8.2 and Caddy binaries the tests drive (and
# systemd-analyze, which checks the shipped units); a missing
# one is reported and its variable left unset.
hosting_export_binaries() {
    local var path status=0
    local -A wanted=(
        [HOSTING_TEST_NGINX]=nginx
        [HOSTING_TEST_APACHE]=apache2
        [HOSTING_TEST_PHP_FPM_82]=php-fpm8.2
        [HOSTING_TEST_CADDY]=caddy
        [HOSTING_TEST_SYSTEMD_ANALYZE]=systemd-analyze
    )
    for var in HOSTING_TEST_NGINX HOSTING_TEST_APACHE HOSTING_TEST_PHP_FPM_82 HOSTING_TEST_CADDY \
        HOSTING_TEST_SYSTEMD_ANALYZE; do
        path="$(command -v "${wanted[${var}]}" 2>/dev/null || true)"
        if [[ -z "${path}" && -x "/usr/sbin/${wanted[${var}]}" ]]; then
            path="/usr/sbin/${wanted[${var}]}"
        fi
        if [[ -n "${path}" ]]; then
            export "${var}=${path}"
        else
            _hosting_log "${wanted[${var}]} not found; ${var} stays unset"
            status=1
        fi
    done
    return "${status}"
}

# Create the throwaway Unix users in HOSTING_TEST_USERS (no login shell, no
# home directory) when they are missing, and export HOSTING_TEST_SYSTEM_USERS.
hosting_create_test_users() {
    local user shell=/usr/sbin/nologin
    [[ -x "${shell}" ]] || shell=/bin/false
    for user in "${HOSTING_TEST_USERS[@]}"; do
        id -u "${user}" >/dev/null 2>&1 && continue
        if ! _hosting_is_root; then
            _hosting_log "user ${user} is missing and only root can create it;" \
                "HOSTING_TEST_SYSTEM_USERS stays unset"
            return 1
        fi
        # A concurrent run may create it first: only a user still missing is an error.
        if ! useradd --no-create-home --user-group --shell "${shell}" \
            --comment "hosting-sdk test user" "${user}" >&2 &&
            ! id -u "${user}" >/dev/null 2>&1; then
            _hosting_log "could not create user ${user}; HOSTING_TEST_SYSTEM_USERS stays unset"
            return 1
        fi
        _hosting_log "created test user ${user}"
    done
    HOSTING_TEST_SYSTEM_USERS="$(
        IFS=,
        printf '%s' "${HOSTING_TEST_USERS[*]}"
    )"
    export HOSTING_TEST_SYSTEM_USERS
}

# The cached trixie root and the PHP 8.4 built from it.
_hosting_php84_dir() {
    printf '%s/trixie-php84\n' "${HOSTING_CACHE_DIR:-${HOME:-/root}/.cache/hosting-sdk}"
}

# Print "TRIPLET LOADER" for this machine's architecture.
_hosting_multiarch() {
    case "$(uname -m)" in
    x86_64) printf 'x86_64-linux-gnu ld-linux-x86-64.so.2\n' ;;
    aarch64) printf 'aarch64-linux-gnu ld-linux-aarch64.so.1\n' ;;
    *) return 1 ;;
    esac
}

# Does the cached PHP 8.4 in DIR report 8.4 and load pdo_mysql, without warnings?
_hosting_php84_verify() {
    local dir="$1" bin ini scan out
    bin="${dir}/php84/php-fpm8.4"
    ini="${dir}/php84/php.ini"
    scan="${dir}/php84/conf.d"
    [[ -x "${bin}" && -f "${ini}" && -d "${scan}" ]] || return 1
    out="$(PHP_INI_SCAN_DIR="${scan}" "${bin}" -c "${ini}" -v 2>&1)" || return 1
    if [[ "${out}" != "PHP 8.4."* ]] || grep -qiE 'warning|unable to load' <<<"${out}"; then
        _hosting_log "cached PHP 8.4 misbehaves: ${out%%$'\n'*}"
        return 1
    fi
    out="$(PHP_INI_SCAN_DIR="${scan}" "${bin}" -c "${ini}" -m 2>&1)" || return 1
    grep -qx pdo_mysql <<<"${out}" || {
        _hosting_log "cached PHP 8.4 does not load pdo_mysql"
        return 1
    }
}

# debootstrap a minimal trixie into DIR/root and install PHP 8.4 in it.
_hosting_php84_build_root() {
    local dir="$1" root="$1/root"
    local -a pkgs=(php8.4-fpm php8.4-cli php8.4-mysql php8.4-pgsql)
    if [[ -e "${root}" ]]; then
        _hosting_log "removing an incomplete trixie root"
        # --one-file-system: never descend into a mount an interrupted run left behind.
        rm -rf --one-file-system -- "${root}" || return 1
    fi
    _hosting_log "debootstrap trixie into ${root} (about a minute)"
    if ! debootstrap --variant=minbase trixie "${root}" http://deb.debian.org/debian \
        >"${dir}/debootstrap.log" 2>&1; then
        _hosting_log "debootstrap failed; last lines of ${dir}/debootstrap.log:"
        tail -n 20 "${dir}/debootstrap.log" >&2
        return 1
    fi
    # Never start services inside the root.
    printf '#!/bin/sh\nexit 101\n' >"${root}/usr/sbin/policy-rc.d" || return 1
    chmod 0755 "${root}/usr/sbin/policy-rc.d" || return 1
    _hosting_log "installing ${pkgs[*]} in the trixie root"
    if ! DEBIAN_FRONTEND=noninteractive chroot "${root}" apt-get install -y -q \
        --no-install-recommends "${pkgs[@]}" >"${dir}/apt.log" 2>&1; then
        _hosting_log "retrying after apt-get update in the trixie root"
        if ! { DEBIAN_FRONTEND=noninteractive chroot "${root}" apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive chroot "${root}" apt-get install -y -q \
                --no-install-recommends "${pkgs[@]}"; } >>"${dir}/apt.log" 2>&1; then
            _hosting_log "apt-get install in the trixie root failed; last lines of ${dir}/apt.log:"
            tail -n 20 "${dir}/apt.log" >&2
            return 1
        fi
    fi
    touch "${dir}/root.done"
}

# Make DIR/php84: the patched FPM binary, a php.ini whose extension_dir points
# into the root, and a copy of the root's conf.d with the links resolved.
_hosting_php84_build_install() {
    local dir="$1" root="$1/root" out="$1/php84" arch triplet loader extdir="" d link target
    arch="$(_hosting_multiarch)" || {
        _hosting_log "unsupported architecture $(uname -m) for the trixie PHP 8.4"
        return 1
    }
    read -r triplet loader <<<"${arch}"
    rm -rf -- "${out}" || return 1
    mkdir -p "${out}/conf.d" || return 1
    install -m 0755 "${root}/usr/sbin/php-fpm8.4" "${out}/php-fpm8.4" || return 1
    if ! patchelf --set-interpreter "${root}/usr/lib/${triplet}/${loader}" \
        --force-rpath --set-rpath "${root}/usr/lib/${triplet}" "${out}/php-fpm8.4" >&2; then
        _hosting_log "patchelf failed on ${out}/php-fpm8.4"
        return 1
    fi
    for d in "${root}"/usr/lib/php/2024*; do
        if [[ -f "${d}/pdo_mysql.so" ]]; then
            extdir="${d}"
            break
        fi
    done
    if [[ -z "${extdir}" ]]; then
        _hosting_log "no PHP 8.4 extension directory with pdo_mysql.so under ${root}/usr/lib/php"
        return 1
    fi
    {
        printf '; Generated by scripts/lib/servers.sh: the trixie php.ini, run from the host.\n'
        printf 'extension_dir = "%s"\n' "${extdir}"
        cat "${root}/etc/php/8.4/fpm/php.ini"
    } >"${out}/php.ini" || return 1
    # The links are absolute inside the root (/etc/php/8.4/mods-available/...).
    for link in "${root}"/etc/php/8.4/fpm/conf.d/*.ini; do
        [[ -e "${link}" || -L "${link}" ]] || continue
        target="${link}"
        if [[ -L "${link}" ]]; then
            target="$(readlink "${link}")" || return 1
            case "${target}" in
            /*) target="${root}${target}" ;;
            *) target="$(dirname "${link}")/${target}" ;;
            esac
        fi
        cp -- "${target}" "${out}/conf.d/$(basename "${link}")" || return 1
    done
    touch "${dir}/php84.done"
}

# Under the lock: reuse DIR when it verifies, else rebuild what is missing.
_hosting_php84_prepare() {
    local dir="$1"
    if [[ -f "${dir}/root.done" && -f "${dir}/php84.done" ]] && _hosting_php84_verify "${dir}"; then
        return 0
    fi
    if ! _hosting_is_root; then
        _hosting_log "building PHP 8.4 from trixie needs root"
        return 1
    fi
    # A build that does not verify is made again from its stamps down.
    rm -f -- "${dir}/php84.done"
    if [[ ! -f "${dir}/root.done" ]]; then
        _hosting_php84_build_root "${dir}" || return 1
    fi
    _hosting_php84_build_install "${dir}" || return 1
    _hosting_php84_verify "${dir}" || {
        _hosting_log "the rebuilt PHP 8.4 does not verify; remove ${dir} to start over"
        return 1
    }
}

# A second real PHP beside 8.2: PHP 8.4 from a cached debootstrapped trixie,
# run from the host with its own php.ini and scan dir (see MACHINE-FACTS).
# Exports HOSTING_TEST_PHP_FPM_84_{BIN,INI,SCAN_DIR}; on failure they stay unset.
hosting_setup_php84() {
    local dir status=0
    unset HOSTING_TEST_PHP_FPM_84_BIN HOSTING_TEST_PHP_FPM_84_INI HOSTING_TEST_PHP_FPM_84_SCAN_DIR
    dir="$(_hosting_php84_dir)"
    if ! mkdir -p "${dir}"; then
        _hosting_log "cannot create ${dir}; PHP 8.4 tests will be skipped"
        return 1
    fi
    # One build at a time across concurrent runs.
    (
        if ! flock -w 1800 9; then
            _hosting_log "timed out waiting for ${dir}/.lock"
            exit 1
        fi
        _hosting_php84_prepare "${dir}"
    ) 9>"${dir}/.lock" || status=$?
    if ((status != 0)); then
        _hosting_log "PHP 8.4 is unavailable; HOSTING_TEST_PHP_FPM_84_* stay unset" \
            "(its tests are skipped, or fail under CI=true)"
        return 1
    fi
    export HOSTING_TEST_PHP_FPM_84_BIN="${dir}/php84/php-fpm8.4"
    export HOSTING_TEST_PHP_FPM_84_INI="${dir}/php84/php.ini"
    export HOSTING_TEST_PHP_FPM_84_SCAN_DIR="${dir}/php84/conf.d"
    _hosting_log "PHP 8.4 ready: ${HOSTING_TEST_PHP_FPM_84_BIN}"
}

# Export HOSTING_TEST_SYSTEM_SERVICES=1 when the tests may drive this machine's own
# nginx, apache2 and php8.2-fpm services (bins/hostctl/tests/system_mode.rs): as root, with
# `service` and the three init scripts present. Those tests start and stop the services,
# serve on port 80 and add (then remove) one include file in each distro configuration; they
# refuse to run while one of the services is already running. No other test uses port 80.
hosting_export_system_services() {
    local script
    unset HOSTING_TEST_SYSTEM_SERVICES
    if ! _hosting_is_root; then
        _hosting_log "not root: HOSTING_TEST_SYSTEM_SERVICES stays unset"
        return 1
    fi
    if ! command -v service >/dev/null 2>&1; then
        _hosting_log "no service command: HOSTING_TEST_SYSTEM_SERVICES stays unset"
        return 1
    fi
    for script in nginx apache2 php8.2-fpm; do
        if [[ ! -x "/etc/init.d/${script}" ]]; then
            _hosting_log "no /etc/init.d/${script}: HOSTING_TEST_SYSTEM_SERVICES stays unset"
            return 1
        fi
    done
    export HOSTING_TEST_SYSTEM_SERVICES=1
}

# Print the exported binary and user variables (none of them is a secret).
hosting_print_binaries() {
    local var
    for var in HOSTING_TEST_NGINX HOSTING_TEST_APACHE HOSTING_TEST_PHP_FPM_82 HOSTING_TEST_CADDY \
        HOSTING_TEST_PHP_FPM_84_BIN HOSTING_TEST_PHP_FPM_84_INI \
        HOSTING_TEST_PHP_FPM_84_SCAN_DIR HOSTING_TEST_SYSTEM_USERS \
        HOSTING_TEST_SYSTEM_SERVICES; do
        if [[ -n "${!var:-}" ]]; then
            _hosting_log "${var}=${!var}"
        else
            _hosting_log "${var} (unset)"
        fi
    done
}

_hosting_stop_postgres() {
    local data="${_HOSTING_PG_DATA}" pid i
    [[ -n "${data}" ]] || return 0
    if [[ -f "${data}/postmaster.pid" ]]; then
        _hosting_log "stopping PostgreSQL"
        if ! _hosting_pg_run pg_ctl -D "${data}" -m fast -w -t 30 -s stop >/dev/null 2>&1; then
            _hosting_pg_run pg_ctl -D "${data}" -m immediate -w -t 10 -s stop >/dev/null 2>&1
        fi
        if [[ -f "${data}/postmaster.pid" ]]; then
            pid="$(head -n 1 "${data}/postmaster.pid" 2>/dev/null)"
            if [[ "${pid}" =~ ^[0-9]+$ ]] && kill -0 "${pid}" 2>/dev/null; then
                _hosting_log "PostgreSQL did not stop; killing ${pid}"
                kill -KILL "${pid}" 2>/dev/null
                for ((i = 0; i < 50; i++)); do
                    kill -0 "${pid}" 2>/dev/null || break
                    sleep 0.1
                done
            fi
        fi
    fi
    _HOSTING_PG_DATA=""
    unset HOSTING_TEST_POSTGRES_URL
}

_hosting_stop_mariadb() {
    local pid="${_HOSTING_MARIADB_PID}" i
    [[ -n "${pid}" ]] || return 0
    if kill -0 "${pid}" 2>/dev/null; then
        _hosting_log "stopping MariaDB"
        # Bounded: a server that died half-way can leave mariadb-admin waiting forever.
        timeout 30 mariadb-admin --no-defaults --connect-timeout=10 \
            --socket="${_HOSTING_MARIADB_SOCKET}" \
            -u"$(_hosting_mariadb_admin_user)" shutdown >/dev/null 2>&1
        for ((i = 0; i < 300; i++)); do
            kill -0 "${pid}" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "${pid}" 2>/dev/null; then
            _hosting_log "MariaDB did not stop; sending TERM"
            kill -TERM "${pid}" 2>/dev/null
            for ((i = 0; i < 100; i++)); do
                kill -0 "${pid}" 2>/dev/null || break
                sleep 0.1
            done
        fi
        if kill -0 "${pid}" 2>/dev/null; then
            _hosting_log "MariaDB still running; killing ${pid}"
            kill -KILL "${pid}" 2>/dev/null
        fi
    fi
    # Reap the child (no zombie left behind).
    wait "${pid}" 2>/dev/null
    _HOSTING_MARIADB_PID=""
    unset HOSTING_TEST_MARIADB_URL
}

# Stop every server that was started and remove the temp dir.  Idempotent,
# never fails, safe to call from a trap at any point of a start.
hosting_stop_servers() {
    local -
    set +e
    _hosting_stop_mariadb
    _hosting_stop_postgres
    if [[ -n "${_HOSTING_OWN_TEMP_DIR}" && "${_HOSTING_OWN_TEMP_DIR}" != / &&
        -d "${_HOSTING_OWN_TEMP_DIR}" ]]; then
        rm -rf -- "${_HOSTING_OWN_TEMP_DIR}"
    fi
    _HOSTING_OWN_TEMP_DIR=""
    HOSTING_SERVERS_DIR=""
    _HOSTING_TLS_DIR=""
    unset HOSTING_TEST_DB_CA
    return 0
}
