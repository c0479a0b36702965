package render

import "strings"

// Initialisation is all or nothing. The official images initialise an empty
// data directory once: initdb or mysqld --initialize, then the scripts in
// /docker-entrypoint-initdb.d (the users, a MySQL replica's copy of pod 0,
// the restore of a dump), with a temporary server on the local socket only.
// They decide "already initialised" from a file the first step creates
// (PG_VERSION, or the mysql system schema), so a container killed or failing
// in a later step would, on its next start, skip initialisation and serve
// whatever the interrupted step left: a half-loaded dump, or a MySQL replica
// with partial data and no replication.
//
// The database container therefore starts through initialiseScript, which
// writes a marker file on the volume before the image's entrypoint
// initialises an empty data directory, and the last init script
// (initialisedScript) removes it once every step before it succeeded. A
// start that finds the marker knows the last initialisation did not finish:
// it empties the data directory and the entrypoint initialises it again,
// from scratch. A data directory without the marker is never touched, so
// Databases created before the marker existed keep their data.
//
// The marker's name starts with a dot: mysqld --initialize ignores such
// entries in the data directory, as it ignores lost+found. PostgreSQL's data
// directory is a subdirectory of the volume, so its marker sits beside it.

const (
	// initialisingMarker is the marker's file name.
	initialisingMarker = ".database-operator-initialising"
	// initialisedKey is the last init script's ConfigMap key and
	// initialisedFile its name in /docker-entrypoint-initdb.d: it sorts after
	// every other init script.
	initialisedKey  = "initdb-initialised.sh"
	initialisedFile = "99-initialised.sh"
)

// initialisation is an engine's part of initialiseScript.
type initialisation struct {
	// marker is the shell expression of the marker's path.
	marker string
	// initialised is a shell test that succeeds when the image's entrypoint
	// considers the data directory initialised.
	initialised string
	// empty removes the data directory's contents (never lost+found or the
	// marker).
	empty string
	// start is the shell command that execs the image's entrypoint.
	start string
}

// initialiseScript is the database container's command (bash -c).
func initialiseScript(e engine, s *spec) string {
	i := e.initialisation(s)
	return strings.NewReplacer("MARKER", i.marker, "INITIALISED", i.initialised, "EMPTY", i.empty, "START", i.start).Replace(
		`set -euo pipefail
marker=MARKER
if [ -e "$marker" ]; then
  echo "database-operator: the last initialisation of this data directory did not finish; emptying it to initialise it again" >&2
  EMPTY
elif ! INITIALISED; then
  echo "database-operator: initialising an empty data directory"
  : >"$marker"
  sync -- "$marker" "${marker%/*}"
fi
START
`)
}

// initialisedScript is sourced by the image's entrypoint after every other
// init script succeeded: the data directory is complete.
func initialisedScript(e engine, s *spec) string {
	return strings.ReplaceAll(`# shellcheck shell=bash
# Rendered by database-operator: the last init script. Every step before it
# succeeded, so the data directory is complete: remove the marker that makes
# the next start throw an unfinished initialisation away.
rm -f -- MARKER
sync -- "$(dirname -- MARKER)"
echo "database-operator: data directory initialised"
`, "MARKER", e.initialisation(s).marker)
}
