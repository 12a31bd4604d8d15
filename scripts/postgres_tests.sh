#!/usr/bin/env bash
# The library tests again on PostgreSQL (the database URL is a setting; SQLite is the default).
# Installs and starts Debian's PostgreSQL if needed, runs the library, job and scale-out tests against it
# (each test gets a fresh database), and stops the server again if this script started it.
set -euo pipefail
PY=${PY:-.venv/bin/python}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
if ! command -v pg_ctlcluster >/dev/null; then
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
started=""
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
    $SUDO pg_ctlcluster "$version" main start
    started=1
fi
trap '[ -n "$started" ] && $SUDO pg_ctlcluster "$version" main stop' EXIT
as_postgres=$([ "$(id -u)" = 0 ] && echo "runuser -u postgres --" || echo "sudo -u postgres")
$as_postgres psql -q -c "DO \$\$ BEGIN CREATE ROLE sheetid SUPERUSER LOGIN PASSWORD 'sheetid';
    EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;"
# library and job-queue tests on PostgreSQL, and the scaled shape as separate processes (PostgreSQL,
# embedded Milvus server, two API replicas, two workers, one worker SIGKILLed mid-ingest)
SHEETID_TEST_DATABASE_URL=postgresql+psycopg://sheetid:sheetid@127.0.0.1/postgres "$PY" -m pytest -q \
    tests/test_indexer.py tests/test_jobs.py tests/test_scale_out.py
