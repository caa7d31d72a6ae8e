#!/bin/sh
# Runs once, when the Postgres volume is first initialised, as the superuser:
#   mlflow        MLflow's backend store (created by the image from POSTGRES_DB)
#   mlflow_auth   MLflow's basic-auth user store, beside it (same owner: the tracking server)
#   predictions   the prediction store, owned by predictions_owner (not the superuser), with
#                 predictions_writer (the serving service: INSERT on predictions, SELECT on the
#                 schema version) and predictions_reader (Lab and jobs: drift checks, label
#                 loads and performance checks; SELECT on every table, INSERT/DELETE on labels,
#                 INSERT on label_loads and performance_windows, never a change to a logged
#                 prediction).
#   scheduler     the policy scheduler's job store and history, owned by its own role
#                 (the scheduler service creates its tables at first start).
# The tables are created later by the owner (the predictions-prepare one-shot), which then
# grants each role exactly its privileges table by table (prepare-prediction-store.py); the
# default privileges below only let the reader read a table the owner adds.
set -eu
: "${PREDICTIONS_OWNER_PASSWORD:?}" "${PREDICTIONS_WRITER_PASSWORD:?}" "${PREDICTIONS_READER_PASSWORD:?}"
: "${SCHEDULER_DB_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --no-psqlrc \
    --set su="$POSTGRES_USER" \
    --set owner_pw="$PREDICTIONS_OWNER_PASSWORD" \
    --set writer_pw="$PREDICTIONS_WRITER_PASSWORD" \
    --set reader_pw="$PREDICTIONS_READER_PASSWORD" \
    --set scheduler_pw="$SCHEDULER_DB_PASSWORD" <<'SQL'
CREATE DATABASE mlflow_auth OWNER :"su";
CREATE ROLE scheduler LOGIN PASSWORD :'scheduler_pw';
CREATE DATABASE scheduler OWNER scheduler;
CREATE ROLE predictions_owner LOGIN PASSWORD :'owner_pw';
CREATE ROLE predictions_writer LOGIN PASSWORD :'writer_pw';
CREATE ROLE predictions_reader LOGIN PASSWORD :'reader_pw';
CREATE DATABASE predictions OWNER predictions_owner;
-- Only the superuser reaches MLflow's databases; the store's roles reach their own only.
REVOKE ALL ON DATABASE mlflow, mlflow_auth, predictions, scheduler FROM PUBLIC;
GRANT CONNECT ON DATABASE predictions TO predictions_writer, predictions_reader;
SQL

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname predictions --no-psqlrc <<'SQL'
-- Postgres 15+ already keeps CREATE on `public` from PUBLIC; older ones do not.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO predictions_writer, predictions_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE predictions_owner IN SCHEMA public
    GRANT SELECT ON TABLES TO predictions_reader;
SQL
