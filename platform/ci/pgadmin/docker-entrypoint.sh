#!/usr/bin/env bash
# The official pgAdmin image's start-up, for the pgadmin4 package installed in /opt/pgadmin:
# write the settings, create the configuration database and the login user at first start,
# pre-register the servers file, then let gunicorn replace this script as PID 1.
set -Eeuo pipefail

die() { echo "docker-entrypoint: error: $*" >&2; exit 1; }

# The package folder: setup.py, config.py and the pgAdmin4 WSGI module live there.
python=/opt/pgadmin/bin/python3
app_dir=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"] + "/pgadmin4")')
[[ -f $app_dir/pgAdmin4.py ]] || die "no pgAdmin in /opt/pgadmin ($app_dir/pgAdmin4.py is missing)"
data_dir=/var/lib/pgadmin

if [[ -n ${PGADMIN_DEFAULT_PASSWORD_FILE:-} ]]; then
    PGADMIN_DEFAULT_PASSWORD=$(<"$PGADMIN_DEFAULT_PASSWORD_FILE")
fi

# Settings, rewritten at every start so they always follow the environment. Like upstream,
# PGADMIN_CONFIG_X=value becomes the Python line `X = value` (string values carry quotes).
{
    echo "# written by docker-entrypoint.sh at container start"
    echo "SERVER_MODE = True"
    echo "DATA_DIR = '$data_dir'"
    echo "LOG_FILE = '/dev/null'"  # logs go to the console, where docker collects them
    echo "CA_FILE = '/etc/ssl/certs/ca-certificates.crt'"
    while IFS='=' read -r name value; do
        echo "${name#PGADMIN_CONFIG_} = $value"
    done < <(env | grep '^PGADMIN_CONFIG_' || true)
} >"$CONFIG_DISTRO_FILE_PATH"

if [[ ! -f $data_dir/pgadmin4.db ]]; then
    if [[ -z ${PGADMIN_DEFAULT_EMAIL:-} || -z ${PGADMIN_DEFAULT_PASSWORD:-} ]]; then
        die "PGADMIN_DEFAULT_EMAIL and PGADMIN_DEFAULT_PASSWORD (or" \
            "PGADMIN_DEFAULT_PASSWORD_FILE) must be set to create pgAdmin's login at first start"
    fi
    # setup.py takes the first user from these instead of asking on a terminal.
    PGADMIN_SETUP_EMAIL=$PGADMIN_DEFAULT_EMAIL PGADMIN_SETUP_PASSWORD=$PGADMIN_DEFAULT_PASSWORD \
        "$python" "$app_dir/setup.py" setup-db >&2
    servers=${PGADMIN_SERVER_JSON_FILE:-/pgadmin4/servers.json}
    if [[ -f $servers ]]; then
        "$python" "$app_dir/setup.py" load-servers "$servers" --user "$PGADMIN_DEFAULT_EMAIL" >&2
    fi
fi
unset PGADMIN_DEFAULT_PASSWORD PGADMIN_SETUP_PASSWORD

# One worker: pgAdmin keeps per-user state in the process (upstream runs one, with threads).
exec gunicorn --chdir "$app_dir" \
    --bind "${PGADMIN_LISTEN_ADDRESS:-[::]}:${PGADMIN_LISTEN_PORT:-80}" \
    --workers 1 --threads "${GUNICORN_THREADS:-25}" --timeout "${GUNICORN_TIMEOUT:-86400}" \
    --access-logfile "${GUNICORN_ACCESS_LOGFILE:--}" \
    pgAdmin4:app
