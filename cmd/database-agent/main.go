// Command database-agent runs in every database pod (see package agent).
//
//	database-agent copy DEST
//	    copy this binary to DEST (an init container puts it on a volume the
//	    database container shares; the operator's image has no shell).
//	database-agent run --engine=postgresql|mysql --prepare=SCRIPT [flags] -- SERVER...
//	    run the database server as PID 1 of the database container.
//	database-agent wal-push PATH
//	    PostgreSQL's archive_command: archive one WAL file (see package archive).
//	database-agent wal-fetch NAME DEST
//	    its restore_command: fetch one archived WAL file.
//	database-agent base-backup [--retention=7d]
//	    take a base backup into the archive, then apply retention.
//	database-agent restore
//	    fill an empty PGDATA from an archive, to a moment or its end.
//	database-agent restore-mysql
//	    write the SQL that restores a MySQL archive (base dump, then binary
//	    logs) to a moment or its end, for the restore script to load.
//	database-agent restore-check
//	    restore the newest base backup and all WAL into a scratch PGDATA,
//	    run a check query, and report (spec.backup.restoreCheck).
//
// The archive commands read the object store from ARCHIVE_S3_* variables
// (RESTORE_S3_* for the archive a restore reads).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/example/database-operator/agent"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: database-agent copy DEST | run [flags] -- SERVER... | wal-push PATH | wal-fetch NAME DEST | base-backup | restore | restore-mysql | restore-check")
		os.Exit(2)
	}
	var err error
	status := 0
	switch os.Args[1] {
	case "copy":
		if len(os.Args) != 3 {
			err = fmt.Errorf("usage: database-agent copy DEST")
			break
		}
		err = copySelf(os.Args[2])
	case "run":
		status, err = run(os.Args[2:])
	case "wal-push":
		status, err = walPush(os.Args[2:])
	case "wal-fetch":
		status, err = walFetch(os.Args[2:])
	case "base-backup":
		status, err = baseBackup(os.Args[2:])
	case "restore":
		status, err = restore(os.Args[2:])
	case "restore-mysql":
		status, err = restoreMySQL(os.Args[2:])
	case "restore-check":
		status, err = restoreCheck(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want copy, run, wal-push, wal-fetch, base-backup, restore, restore-mysql or restore-check", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "database-agent:", err)
		if status == 0 {
			status = 1
		}
	}
	os.Exit(status)
}

// copySelf copies the running binary to dest, through a temporary file
// renamed into place, so a restarted init container never leaves half a
// binary behind.
func copySelf(dest string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".database-agent-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("copying to %s: %w", dest, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

func run(args []string) (int, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	engine := fs.String("engine", "postgresql", "the database engine: postgresql or mysql")
	prepare := fs.String("prepare", "", "bash script run before every start of the server, with ROLE=primary|replica")
	stopSignal := fs.String("stop-signal", "SIGINT", "the signal that stops the server cleanly: SIGINT or SIGTERM")
	startingFile := fs.String("starting-file", "", "file that exists while the server is prepared or started")
	roleFile := fs.String("role-file", "", "file the agent keeps the pod's role in; the prepare script reads it (ROLE_FILE) to stop waiting for a primary once the role changed")
	terminationLog := fs.String("termination-log", "", "file a failed start writes its reason to (the container's termination message file), reported until the server answers")
	upstream := fs.String("upstream", "", "host:port of the primary, which a replica that is not streaming dials")
	syncNames := fs.String("synchronous-standby-names", "", "PostgreSQL: the primary's synchronous_standby_names (empty: asynchronous)")
	archiveTimeout := fs.Duration("archive-timeout", 0, "PostgreSQL: close the primary's current WAL segment once it has been current this long plus 5s (archive_timeout's backstop); MySQL: ship the primary's binary logs to the archive (ARCHIVE_S3_*), closing the current file once it has transactions and has been current this long; 0: never")
	dataVolume := fs.String("data-volume", "", "the data volume's mount point, whose size and free space the reports carry")
	isolationTimeout := fs.Duration("isolation-timeout", 0, "stop a primary that had replicas once none streams from it and the API server does not answer for this long (fencing it in a network partition); 0: never")
	semiSync := fs.Bool("semi-sync", false, "MySQL: semi-synchronous replication at the primary (a commit waits for a replica to receive it)")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	server := fs.Args()
	if len(server) == 0 {
		return 2, fmt.Errorf("no server command after --")
	}
	cfg := agent.Config{
		Server:           server,
		Prepare:          []string{"bash", "-c", *prepare},
		StartingFile:     *startingFile,
		RoleFile:         *roleFile,
		IsolationTimeout: *isolationTimeout,
		DataVolume:       *dataVolume,
		TerminationLog:   *terminationLog,
		Upstream:         *upstream,
		Log:              slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("component", "database-agent"),
	}
	switch *engine {
	case "postgresql":
		// Over loopback TCP, not the socket: the image's temporary server
		// that initialises a data directory listens on the socket only,
		// and must not pass for the primary.
		// PGSSLMODE=prefer: the container's own (verify-full with TLS,
		// for the replicas' connections to <db>) names the Service, and no
		// certificate names 127.0.0.1; the connection never leaves the pod.
		cfg.Engine = agent.Postgres{Password: os.Getenv("POSTGRES_PASSWORD"), Env: []string{"PGHOST=127.0.0.1", "PGPORT=5432", "PGSSLMODE=prefer"},
			SynchronousStandbyNames: *syncNames, ArchiveTimeout: *archiveTimeout, Segments: &agent.SegmentClock{}}
	case "mysql":
		shipper, err := binlogShipper(*archiveTimeout)
		if err != nil {
			return 2, err
		}
		if shipper != nil {
			shipper.Log = cfg.Log
		}
		cfg.Engine = agent.MySQL{Password: os.Getenv("MYSQL_ROOT_PASSWORD"), Sync: *semiSync, Binlogs: shipper}
	default:
		return 2, fmt.Errorf("--engine=%q: want postgresql or mysql", *engine)
	}
	switch *stopSignal {
	case "SIGINT":
		cfg.StopSignal = syscall.SIGINT
	case "SIGTERM":
		cfg.StopSignal = syscall.SIGTERM
	default:
		return 2, fmt.Errorf("--stop-signal=%q: want SIGINT or SIGTERM", *stopSignal)
	}
	namespace, name := os.Getenv("POD_NAMESPACE"), os.Getenv("POD_NAME")
	if namespace == "" || name == "" {
		return 2, fmt.Errorf("POD_NAMESPACE and POD_NAME must be set (the downward API)")
	}
	api, err := agent.InClusterPodAPI(namespace, name)
	if err != nil {
		return 1, err
	}
	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	return agent.Run(context.Background(), cfg, api, stop)
}
