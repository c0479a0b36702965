package render

import (
	"strings"

	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// Restore (spec.restore) starts a new Database from a dump that the backup
// CronJob of another Database wrote. The design leans on what the official
// images already guarantee instead of adding a step of its own:
//
//   - The images' entrypoints run the files in /docker-entrypoint-initdb.d
//     only while they initialise an empty data directory, after creating the
//     superuser, the application database and (MySQL) the application user,
//     with a temporary server that listens on the local socket only. That is
//     exactly "load once, into an empty data directory, before clients
//     connect". The restore script is one more ConfigMap key mounted there,
//     sorting after the engine's own init scripts.
//   - The source's backup volume, <fromDatabase>-backup, is mounted read-only
//     at /restore in the database container; the script streams the dump
//     from it (gunzip into the engine's client), so nothing is copied and no
//     extra disk is needed.
//   - Only pod 0 loads the dump, and while the restore is in progress the
//     StatefulSet runs pod 0 alone (spec.podCount): only the restoring pod
//     mounts the source's backup volume, which a ReadWriteOnce volume could
//     not give to pods on other nodes. Once pod 0 is Ready the reconciler
//     sets the Restored condition (Observed.RestoreDone): the pods then
//     render without the backup volume (pod 0 restarts once) and the
//     replicas are created, as copies of pod 0. (PostgreSQL replicas never
//     initialise: the bootstrap-replica init container copies pod 0; MySQL
//     replicas copy pod 0 in initdb-replication.sh and skip the restore.)
//   - A restore completes or starts again from scratch: the whole
//     initialisation is all or nothing (initialise.go), so a container
//     killed during the load, or a load that fails, leaves a marker that
//     makes the next start empty the data directory and initialise it
//     again. A failing load writes its reason to the container's
//     termination message, which the reconciler reports in the Restored
//     and Degraded conditions (RestoreFailedPrefix).
//
// The dump is the application database only, without owners or privileges
// (see the backup scripts), so it loads into a Database whose application
// database and user have other names or passwords.

const (
	// restoreScriptKey is the restore script's key in the ConfigMap.
	restoreScriptKey = "initdb-restore.sh"
	// restoreVolumeName and restoreMountPath are where the source's backup
	// volume appears in the database container.
	restoreVolumeName = "restore"
	restoreMountPath  = "/restore"
)

// restoreSteps are an engine's parts of the restore script.
type restoreSteps struct {
	// file is the script's name in /docker-entrypoint-initdb.d; it must sort
	// after the engine's other init scripts.
	file string
	// prepare is shell code run before load (may be empty).
	prepare string
	// load reads the gzipped dump "$restore_file" into the application
	// database with the entrypoint's docker_process_sql; it is one shell
	// command (a pipeline), tested with if !.
	load string
}

// restoreFailedFunc is the restore scripts' restore_failed.
const restoreFailedFunc = `# restore_failed ends the initialisation: the next start finds it unfinished,
# empties the data directory and restores again. The reason goes to the
# termination message too, where the operator reads it.
restore_failed() {
  printf '` + RestoreFailedPrefix + `%s; the next start restores again\n' "$1" >&2
  printf '` + RestoreFailedPrefix + `%s' "$1" >/dev/termination-log 2>/dev/null || true
  (docker_temp_server_stop) || true
  exit 1
}`

// restoreScript is sourced by the image's entrypoint (see the comment at the
// top of this file). RESTORE_FROM names the source Database, RESTORE_BACKUP
// an optional dump file name; RESTORE_DIR (default /restore) exists so the
// script can be exercised outside a pod. The latest dump is the last by name:
// names carry a UTC timestamp, and unlike modification times names survive
// copying.
func restoreScript(e engine) string {
	steps := e.restore()
	prepare := ""
	if steps.prepare != "" {
		prepare = "  " + steps.prepare + "\n"
	}
	return strings.NewReplacer("  PREPARE_LOAD\n", prepare, "LOAD_DUMP", steps.load).Replace(`# shellcheck shell=bash
# Rendered by database-operator: restore a dump of Database ${RESTORE_FROM}.
# Sourced by the image's entrypoint once, while it initialises an empty data
# directory. Only pod 0 loads the dump; replicas copy pod 0.
` + restoreFailedFunc + `
if [ "${POD_NAME##*-}" != "0" ]; then
  echo "database-operator: ${POD_NAME} is a replica: it copies pod 0, which holds the restored data"
else
  restore_dir="${RESTORE_DIR:-` + restoreMountPath + `}"
  restore_file=""
  if [ -n "${RESTORE_BACKUP:-}" ]; then
    restore_file="${restore_dir}/${RESTORE_BACKUP}"
  else
    for restore_candidate in "${restore_dir}/${RESTORE_FROM}"-[0-9]*.sql.gz; do
      if [ -f "$restore_candidate" ]; then
        restore_file="$restore_candidate"
      fi
    done
  fi
  if [ -z "$restore_file" ] || [ ! -f "$restore_file" ]; then
    restore_failed "no dump ${RESTORE_BACKUP:-named ${RESTORE_FROM}-<timestamp>.sql.gz} in ${restore_dir}"
  fi
  echo "database-operator: restoring ${restore_file}"
  PREPARE_LOAD
  if ! LOAD_DUMP; then
    restore_failed "could not load ${restore_file}"
  fi
  echo "database-operator: restored ${restore_file}"
fi
`)
}

// configMounts is the engine's ConfigMap mounts, with the init script that
// completes an initialisation added to the init scripts, and the restore
// script when the Database starts from a dump.
func configMounts(s *spec) []configMount {
	mounts := s.eng.configMounts()
	for i, m := range mounts {
		if m.mountPath != initdbMountPath {
			continue
		}
		items := make(map[string]string, len(m.items)+2)
		for k, v := range m.items {
			items[k] = v
		}
		items[initialisedKey] = initialisedFile
		if s.restoresDump() || s.restoresMySQLArchive() {
			items[restoreScriptKey] = s.eng.restore().file
		}
		mounts[i].items = items
	}
	return mounts
}

// restoresDump says the Database starts from a dump (spec.restore without
// pointInTime) and the restore is not done.
func (s *spec) restoresDump() bool { return s.restore != nil && s.restore.PointInTime == nil }

// restoreEnv tells the restore script which dump to load.
func restoreEnv(s *spec) []*corev1ac.EnvVarApplyConfiguration {
	env := []*corev1ac.EnvVarApplyConfiguration{valueEnv("RESTORE_FROM", s.restore.FromDatabase)}
	if s.restore.Backup != "" {
		env = append(env, valueEnv("RESTORE_BACKUP", s.restore.Backup))
	}
	return env
}

// restoreVolume is the source Database's backup volume, read-only.
func restoreVolume(s *spec) *corev1ac.VolumeApplyConfiguration {
	return corev1ac.Volume().WithName(restoreVolumeName).
		WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().
			WithClaimName(BackupName(s.restore.FromDatabase)).
			WithReadOnly(true))
}

func restoreVolumeMount() *corev1ac.VolumeMountApplyConfiguration {
	return corev1ac.VolumeMount().WithName(restoreVolumeName).WithMountPath(restoreMountPath).WithReadOnly(true)
}
