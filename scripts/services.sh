#!/usr/bin/env bash
# Makes sure the services the tests use are up: PostgreSQL on 127.0.0.1:5432 with a `test`
# database (trust auth for local connections, as on the development and CI machines).
# Safe to run repeatedly; the test suite runs it itself when PostgreSQL does not answer.
set -euo pipefail
host=127.0.0.1
port=5432
if ! pg_isready -h "$host" -p "$port" -q 2>/dev/null; then
  echo "starting PostgreSQL" >&2
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  done
  for _ in $(seq 1 60); do
    pg_isready -h "$host" -p "$port" -q 2>/dev/null && break
    sleep 0.5
  done
  pg_isready -h "$host" -p "$port" >&2 || { echo "PostgreSQL is not answering on $host:$port" >&2; exit 1; }
fi
if ! psql -h "$host" -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
  createdb -h "$host" -p "$port" -U postgres test
fi
