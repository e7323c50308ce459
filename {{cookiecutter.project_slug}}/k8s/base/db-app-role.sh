#!/bin/sh
# Run by the postgres image once, when it creates the database on an empty volume (the same script as
# compose.prod.yaml's): the role the app connects as (DATABASE_URL) owns the database and its schema, and
# is no superuser.
# psql reads the role's name and password from its environment (\getenv): on no command line.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\getenv role APP_DB_USER
\getenv password APP_DB_PASSWORD
\getenv db POSTGRES_DB
CREATE ROLE :"role" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER DATABASE :"db" OWNER TO :"role";
ALTER SCHEMA public OWNER TO :"role";
SQL
