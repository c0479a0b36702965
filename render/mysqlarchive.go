package render

import (
	"strings"

	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// A MySQL point-in-time restore (spec.restore.pointInTime) runs where a
// dump restore does (restore.go): a script among the entrypoint's init
// scripts, which the image runs once, with its temporary server, while it
// initialises an empty data directory, and only on pod 0. The agent's
// restore-mysql plans the whole restore first (the base dump before the
// target, every binary log after it, none missing) and then writes the dump
// and the binary logs replayed up to the target; the script loads that into
// the application database, making the application user the definer of
// what it creates, as a dump restore does. A failure leaves the
// initialisation unfinished, so the next start empties the data directory
// and restores again; the agent's reason goes to the termination message.

// restoresMySQLArchive says the Database restores a MySQL archive and the
// restore is not done.
func (s *spec) restoresMySQLArchive() bool {
	return s.pointInTime() != nil && s.db.Spec.Type == databasev1.MySQL
}

// restoreScratch is where restore-mysql keeps the one binary log file it
// replays at a time: the agent's volume, which goes with the pod.
const restoreScratch = agentMountPath + "/restore"

// mysqlArchiveRestoreScript is the restore script of a MySQL point-in-time
// restore; docker_process_sql and the definer rewrite are the image's and
// the dump restore's.
var mysqlArchiveRestoreScript = strings.NewReplacer("PREPARE_DEFINER", mysqlRestoreDefiner).Replace(`# shellcheck shell=bash
# Rendered by database-operator: restore the archive of Database ${RESTORE_FROM}
# (a base dump and the binary logs after it) to ${RESTORE_TARGET_TIME:-its end}.
# Sourced by the image's entrypoint once, while it initialises an empty data
# directory. Only pod 0 restores; replicas copy pod 0.
` + restoreFailedFunc + `
if [ "${POD_NAME##*-}" != "0" ]; then
  echo "database-operator: ${POD_NAME} is a replica: it copies pod 0, which holds the restored data"
else
  scratch="${RESTORE_SCRATCH:-` + restoreScratch + `}"
  mkdir -p -- "$scratch"
  rm -f -- "$scratch/reason"
  PREPARE_DEFINER
  echo "database-operator: restoring the archive of ${RESTORE_FROM} to ${RESTORE_TARGET_TIME:-its end}"
  # The image's entrypoint runs with pipefail; said again because a
  # restore-mysql that fails part-way (after the dump, say) must not pass
  # for a restore because the client loaded what came.
  set -o pipefail
  if ! "${RESTORE_AGENT:-` + agentBinary + `}" restore-mysql --scratch="$scratch" --termination-log="$scratch/reason" |
    sed -E "/^INSERT INTO /{:row;/;\$/!{N;b row};b};s#DEFINER=${bt}([^${bt}]|${bt}${bt})+${bt}@${bt}([^${bt}]|${bt}${bt})+${bt}#DEFINER=${restore_definer}#g" |
    docker_process_sql; then
    reason="could not load the archive"
    if [ -s "$scratch/reason" ]; then
      reason="$(cat -- "$scratch/reason")"
      reason="${reason#` + RestoreFailedPrefix + `}"
    fi
    restore_failed "$reason"
  fi
  rm -rf -- "$scratch"
  echo "database-operator: restored the archive of ${RESTORE_FROM}"
fi
`)

// mysqlArchiveRestoreEnv is what the restore script and restore-mysql read
// in the database container while restoring.
func mysqlArchiveRestoreEnv(s *spec) []*corev1ac.EnvVarApplyConfiguration {
	return append([]*corev1ac.EnvVarApplyConfiguration{valueEnv("RESTORE_FROM", s.restore.FromDatabase)}, restoreSourceEnv(s)...)
}
