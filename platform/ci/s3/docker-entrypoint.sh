#!/usr/bin/env bash
# MinIO's command line, as far as a compose file uses it, mapped onto moto's server:
#   server DIR [--address [HOST]:PORT] [--console-address ...]
# DIR is ignored (moto keeps objects in memory); the port comes from --address (default 9000);
# the server listens on every interface of the container, which only a published port exposes.
# Anything else runs as given (bash, python3).
set -euo pipefail

if [[ ${1:-} != server ]]; then
    exec "$@"
fi
shift
port=9000
while (($#)); do
    case $1 in
        --address) port=${2##*:}; shift 2 ;;
        --address=*) port=${1##*:}; shift ;;
        --console-address) shift 2 ;;  # no console
        --console-address=*) shift ;;
        --*) echo "docker-entrypoint: ignoring MinIO option $1" >&2; shift ;;
        *) shift ;;  # the data folder(s)
    esac
done
# MinIO reads its keys from these; moto accepts any signature, so they are only reported.
if [[ -z ${MINIO_ROOT_USER:-} || -z ${MINIO_ROOT_PASSWORD:-} ]]; then
    echo "docker-entrypoint: MINIO_ROOT_USER/PASSWORD not set; moto accepts any key anyway" >&2
fi
exec moto_server --host 0.0.0.0 --port "$port"
