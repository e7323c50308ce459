#!/bin/sh
# compose.swarm.yaml's init script for the postgres image (compose.prod.yaml's db-app-role), run once on an
# empty volume: the app's role, its password read from the Docker secret (APP_DB_PASSWORD_FILE), owns the
# database and its schema, and is no superuser. psql reads the values from its environment (\getenv).
(
  APP_DB_PASSWORD=$(cat "$APP_DB_PASSWORD_FILE")
  export APP_DB_PASSWORD
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\getenv role APP_DB_USER
\getenv password APP_DB_PASSWORD
\getenv db POSTGRES_DB
CREATE ROLE :"role" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER DATABASE :"db" OWNER TO :"role";
ALTER SCHEMA public OWNER TO :"role";
SQL
)
