#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432, trust, database `test`) and MariaDB (127.0.0.1:3306,
# root with an empty password, database `test`) answer before the tests run. A no-op where
# both already answer (the CI machines); otherwise installs them from Debian's packages,
# configures them as the CI machines have them, and starts them (no systemd needed).
set -euo pipefail

postgres_up() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
mariadb_up() { command -v mariadb-admin >/dev/null && mariadb-admin -h127.0.0.1 -uroot ping >/dev/null 2>&1; }
wait_for() { for _ in $(seq 1 150); do "$@" && return 0; sleep 0.1; done; return 1; }

if ! postgres_up; then
  echo "ensure-databases: starting PostgreSQL" >&2
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version="$(ls /etc/postgresql | sort -V | tail -n1)"
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)(scram-sha-256|md5|peer)/\1trust/' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for postgres_up
  runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<'SQL'
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'root') THEN CREATE ROLE root SUPERUSER LOGIN; END IF; END $$;
SELECT 'CREATE DATABASE root OWNER root' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'root')\gexec
SELECT 'CREATE DATABASE test' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'test')\gexec
SQL
fi

if ! mariadb_up; then
  echo "ensure-databases: starting MariaDB" >&2
  if [ ! -x /usr/sbin/mariadbd ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  fi
  # mariadbd refuses to run as root without --user; --background would hide that message.
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  wait_for mariadb-admin ping
  mariadb -uroot -e "CREATE DATABASE IF NOT EXISTS test;
    ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
    FLUSH PRIVILEGES;"
  wait_for mariadb_up
fi
