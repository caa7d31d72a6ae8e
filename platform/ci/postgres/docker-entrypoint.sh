#!/usr/bin/env bash
# The official postgres image's entrypoint contract, reimplemented for Debian's packages:
#   POSTGRES_PASSWORD          the superuser's password; required unless
#   POSTGRES_HOST_AUTH_METHOD  is `trust` (default scram-sha-256, for every host connection)
#   POSTGRES_USER              the superuser (default postgres)
#   POSTGRES_DB                a database created at first start (default: the user's name)
#   POSTGRES_INITDB_ARGS       extra initdb arguments
#   PGDATA                     the data directory (default /var/lib/postgresql/data)
#   POSTGRES_{PASSWORD,USER,DB}_FILE   read the value from a file (docker secrets)
# On an empty PGDATA: initdb, then /docker-entrypoint-initdb.d/*.sh, *.sql and *.sql.gz in
# name order, against a temporary server that listens on the Unix socket only; then the real
# server replaces this script as PID 1, so `docker stop` reaches it directly.
set -Eeuo pipefail

die() { echo "docker-entrypoint: error: $*" >&2; exit 1; }

# VAR from VAR or VAR_FILE (not both), like the official image's file_env.
file_env() {
    local var=$1 default=${2:-} file_var="${1}_FILE" value
    if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
        die "both $var and $file_var are set; set one"
    fi
    value=$default
    if [[ -n ${!var:-} ]]; then
        value=${!var}
    elif [[ -n ${!file_var:-} ]]; then
        value=$(<"${!file_var}")
    fi
    export "$var"="$value"
    unset "$file_var"
}

# `docker run IMAGE -c shared_buffers=256MB`: options go to postgres, as with the official image.
if [[ ${1:-} == -* ]]; then
    set -- postgres "$@"
fi

# Anything other than the server (psql, bash) runs as given.
if [[ ${1:-} != postgres ]]; then
    exec "$@"
fi

# As root: make PGDATA the postgres user's (a fresh bind mount is root's), then come back as
# postgres. setpriv (util-linux) execs in place, so the PID and signals are unchanged.
if [[ $(id -u) == 0 ]]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
export POSTGRES_HOST_AUTH_METHOD=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

initialise() {
    if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
        die "the database is uninitialised and POSTGRES_PASSWORD is not set; set it (or" \
            "POSTGRES_PASSWORD_FILE), or POSTGRES_HOST_AUTH_METHOD=trust to allow every" \
            "connection without a password (never outside a test)"
    fi
    # initdb reads the password from a file so it never shows in a process listing; with
    # trust and no password the superuser gets none (initdb refuses an empty password file).
    local pwfile=/dev/null
    local -a password=()
    if [[ -n $POSTGRES_PASSWORD ]]; then
        pwfile=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
        password=(--pwfile="$pwfile")
    fi
    # Word splitting of POSTGRES_INITDB_ARGS is intended (several options in one variable).
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" "${password[@]}" --encoding=UTF8 --locale=C.UTF-8 \
        ${POSTGRES_INITDB_ARGS:-} >&2
    [[ $pwfile == /dev/null ]] || rm -f "$pwfile"

    # initdb trusts local connections (the socket, 127.0.0.1): init scripts, pg_isready and
    # `docker exec psql` need no password, as in the official image. Every other host, the
    # other containers and the host through a published port, must authenticate.
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

    # The temporary server listens on no TCP address: nothing outside sees a half-ready database.
    pg_ctl --pgdata="$PGDATA" --wait --silent \
        --options="-c listen_addresses='' -p 5432" start >&2
    export PGPASSWORD=$POSTGRES_PASSWORD
    local -a psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [[ $POSTGRES_DB != postgres ]]; then
        "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" \
            <<<'CREATE DATABASE :"db";' >&2
    fi

    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case $f in
            *.sh)
                # Executable scripts run on their own; others are sourced, as the official
                # image does (they then see this script's functions and variables).
                if [[ -x $f ]]; then
                    echo "docker-entrypoint: running $f" >&2; "$f"
                else
                    echo "docker-entrypoint: sourcing $f" >&2; . "$f"
                fi ;;
            *.sql)
                echo "docker-entrypoint: running $f" >&2
                "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" >&2 ;;
            *.sql.gz)
                echo "docker-entrypoint: running $f" >&2
                gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" >&2 ;;
            */\*) ;;  # the folder is empty
            *) echo "docker-entrypoint: ignoring $f" >&2 ;;
        esac
    done
    unset PGPASSWORD
    pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop >&2
    echo "docker-entrypoint: PostgreSQL init process complete; ready for start up." >&2
}

# PG_VERSION is the last thing initdb writes: a data directory without it is initialised anew.
if [[ ! -s $PGDATA/PG_VERSION ]]; then
    initialise
fi
exec "$@"
