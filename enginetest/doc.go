// Package enginetest runs what render produces against real database engines
// on loopback: the rendered PostgreSQL configuration, init scripts, replica
// bootstrap, backup and restore with PostgreSQL 15's own binaries, and the
// MySQL scripts with shellcheck and, for the client and server tools, with
// MariaDB 10.11 standing in for MySQL (no MySQL server is installable here;
// tests that use MariaDB say so in their names).
//
// Every script and configuration file is taken from the rendered objects
// (render.Render), never copied, so the tests prove what the operator applies.
// What points into a container is redirected to the test's own temporary
// directories and free loopback ports, as each test says. The official
// images' entrypoints are emulated in the few steps the rendered files rely on
// (docker_process_sql, sourcing /docker-entrypoint-initdb.d once while an
// empty data directory is initialised).
//
// The tests need the engines installed and fail, never skip, when they are
// not: `make test-engines` installs the Debian packages postgresql-15,
// mariadb-server, mariadb-client and shellcheck when missing, then runs them.
// They run as root (the server processes run as the postgres and mysql
// operating system users) and take about a minute.
package enginetest
