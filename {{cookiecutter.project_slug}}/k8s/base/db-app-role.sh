#!/bin/sh
# Run by the postgres image once, when it creates the database on an empty volume (the same script as
# compose.prod.yaml's): the role the app connects as (DATABASE_URL) owns the database and its schema, and
# is no superuser.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set role="$APP_DB_USER" --set password="$APP_DB_PASSWORD" --set db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER DATABASE :"db" OWNER TO :"role";
ALTER SCHEMA public OWNER TO :"role";
SQL
