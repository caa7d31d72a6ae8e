#!/bin/sh
# Runs once, when the Postgres volume is first initialised: the prediction store gets a
# database of its own beside MLflow's backend store, owned by the same user.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -c "CREATE DATABASE \"${PREDICTIONS_DB:-predictions}\" OWNER \"$POSTGRES_USER\""
