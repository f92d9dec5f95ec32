# Starts a PostgreSQL server for the tests: a temporary data directory, a free loopback
# port, password sign-in (user `tributary`, password `tributary-test`), TLS offered with a
# certificate for `localhost` signed by a throwaway authority (`TRIBUTARY_TEST_POSTGRES_CA`
# names its PEM file), stopped when the shell that sourced this exits. Sourced by scripts/test.sh; to run the PostgreSQL tests
# by hand: `source scripts/postgres.sh && start_test_postgres && cargo test --test postgres`.
start_test_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$bin" ]; then
    echo "PostgreSQL is not installed (Debian's postgresql package)" >&2
    return 1
  fi
  local dir port as=()
  dir=$(mktemp -d /tmp/tributary-pg.XXXXXX)
  # The server refuses to run as root: it runs as the package's `postgres` user then.
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$dir"
    as=(runuser -u postgres --)
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo tributary-test > "$dir/pw"
  chmod 644 "$dir/pw"
  # An authority and a certificate it signs for localhost, as a private CA (Amazon RDS's)
  # would.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Tributary test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' > "$dir/ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 2 -extfile "$dir/ext" -out "$dir/server.crt" 2>/dev/null
  chmod 600 "$dir/server.key"
  if [ ${#as[@]} -gt 0 ]; then chown postgres "$dir/server.key" "$dir/server.crt"; fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U tributary --pwfile="$dir/pw" \
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
    "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" start >/dev/null \
    || { cat "$dir/server.log" >&2; return 1; }
  export TRIBUTARY_TEST_POSTGRES="127.0.0.1:$port"
  export TRIBUTARY_TEST_POSTGRES_CA="$dir/ca.crt"
  TRIBUTARY_TEST_POSTGRES_STOP="${as[*]} $bin/pg_ctl -D $dir/data -m immediate stop"
  TRIBUTARY_TEST_POSTGRES_DIR=$dir
  trap 'stop_test_postgres' EXIT
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on $TRIBUTARY_TEST_POSTGRES"
}

stop_test_postgres() {
  [ -n "${TRIBUTARY_TEST_POSTGRES_STOP:-}" ] && $TRIBUTARY_TEST_POSTGRES_STOP >/dev/null 2>&1
  [ -n "${TRIBUTARY_TEST_POSTGRES_DIR:-}" ] && rm -rf "$TRIBUTARY_TEST_POSTGRES_DIR"
  TRIBUTARY_TEST_POSTGRES_STOP=""
}
