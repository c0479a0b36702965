package agent

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/example/database-operator/instance"
)

// Engine is what the agent needs of a database server: what it is doing,
// and how to make it the primary. Demotion is not here: the agent stops the
// server and starts it again through the prepare script with ROLE=replica.
type Engine interface {
	// Observe asks the running server for its role and positions; an error
	// when it does not answer.
	Observe(ctx context.Context) (instance.Report, error)
	// Promote makes a replica the primary and returns when it accepts
	// writes.
	Promote(ctx context.Context) error
	// ConfigurePrimary applies the settings only a serving primary takes,
	// once after each start or promotion.
	ConfigurePrimary(ctx context.Context) error
}

// Postgres talks to the local server with psql, as the superuser, where
// Env's PGHOST and PGPORT say, with the superuser's password (the pod's
// pg_hba.conf requires one for every connection). The password reaches psql
// through its environment only.
type Postgres struct {
	// PSQL is the psql binary; "psql" from PATH when empty.
	PSQL string
	// Password is the superuser's password.
	Password string
	// Env is added to psql's environment (PGHOST, PGPORT).
	Env []string
	// SynchronousStandbyNames is what the primary's
	// synchronous_standby_names must be: "ANY 1 (*)" in sync mode, empty
	// in async mode.
	SynchronousStandbyNames string
	// ArchiveTimeout, when set, is the backstop of PostgreSQL's
	// archive_timeout: Observe closes a primary's current WAL segment once
	// it has been current for longer than this plus ArchiveMargin.
	// PostgreSQL 15's checkpointer was measured (make bench-archive) to go
	// more than a minute without the switch archive_timeout promises, after
	// a start or a crash restart, which would break the recovery point.
	ArchiveTimeout time.Duration
	// Segments remembers since when the current segment has been current;
	// needed with ArchiveTimeout.
	Segments *SegmentClock
}

// ArchiveMargin is how much later than archive_timeout the agent closes a
// segment itself: PostgreSQL's own switch comes first when it works.
const ArchiveMargin = 5 * time.Second

// walSegmentSize is PostgreSQL's default WAL segment size, which the
// operator's initdb keeps.
const walSegmentSize = 16 << 20

// SegmentClock tracks since when a primary's current WAL segment has been
// current, as the agent observes it.
type SegmentClock struct {
	segment uint64
	since   time.Time
}

// due says whether the segment of position has been current longer than
// limit at now, and restarts the clock when it says so or the segment
// changed.
func (c *SegmentClock) due(position instance.LSN, now time.Time, limit time.Duration) bool {
	seg := uint64(position) / walSegmentSize
	if seg != c.segment || c.since.IsZero() {
		c.segment, c.since = seg, now
		return false
	}
	if now.Sub(c.since) < limit {
		return false
	}
	c.since = now
	// A position at the very start of a segment has nothing to close.
	return uint64(position)%walSegmentSize != 0
}

// postgresObserve is one query for everything a report needs. On a
// replica the position is the last WAL received and flushed (what a
// promotion keeps), falling back to what it replayed before its
// walreceiver first connected; the timeline is the one it receives, or
// the one of its last restartpoint. With archiving on, pg_stat_archiver
// and the count of WAL files waiting in archive_status say how archiving
// goes (times as epoch seconds, exact to the microsecond).
const postgresObserve = `SELECT pg_is_in_recovery(),
  CASE WHEN pg_is_in_recovery()
    THEN COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))
    ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END,
  CASE WHEN pg_is_in_recovery()
    THEN COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
    ELSE pg_current_wal_lsn() END,
  COALESCE(pg_last_wal_replay_lsn()::text, ''),
  EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'),
  current_setting('archive_mode') <> 'off',
  COALESCE(a.last_archived_wal, ''), COALESCE(extract(epoch FROM a.last_archived_time)::text, ''),
  COALESCE(a.last_failed_wal, ''), COALESCE(extract(epoch FROM a.last_failed_time)::text, ''),
  (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'),
  (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming')
FROM pg_stat_archiver a`

func (p Postgres) psql(ctx context.Context, timeout time.Duration, sql string) (string, error) {
	bin := p.PSQL
	if bin == "" {
		bin = "psql"
	}
	env := append(append([]string{}, p.Env...), "PGPASSWORD="+p.Password, "PGCONNECT_TIMEOUT=2", "PGAPPNAME="+FieldManager)
	return clientOutput(ctx, timeout, env, bin, "--no-psqlrc", "--no-align", "--tuples-only", "--field-separator=|",
		"--username=postgres", "--dbname=postgres", "--command="+sql)
}

// Observe implements Engine.
func (p Postgres) Observe(ctx context.Context) (instance.Report, error) {
	out, err := p.psql(ctx, 5*time.Second, postgresObserve)
	if err != nil {
		return instance.Report{}, err
	}
	r, err := parsePostgresObserve(out)
	if err != nil {
		return r, err
	}
	if r.Role == instance.Primary && r.Archive != nil && p.ArchiveTimeout > 0 && p.Segments != nil {
		if pos, perr := instance.ParseLSN(r.Position); perr == nil && p.Segments.due(pos, time.Now(), p.ArchiveTimeout+ArchiveMargin) {
			// pg_switch_wal does nothing when nothing was written since
			// the last switch.
			if _, err := p.psql(ctx, 10*time.Second, "SELECT pg_switch_wal()"); err != nil {
				return r, fmt.Errorf("closing WAL segment for archiving: %w", err)
			}
		}
	}
	return r, nil
}

func parsePostgresObserve(out string) (instance.Report, error) {
	f := strings.Split(out, "|")
	if len(f) != 12 {
		return instance.Report{}, fmt.Errorf("unexpected answer %q", out)
	}
	tli, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return instance.Report{}, fmt.Errorf("timeline %q: %w", f[1], err)
	}
	r := instance.Report{Role: instance.Primary, Timeline: tli, Position: f[2]}
	if f[0] == "t" {
		r.Role, r.ReplayPosition, r.Streaming = instance.Replica, f[3], f[4] == "t"
	} else if r.StreamingReplicas, err = strconv.Atoi(f[11]); err != nil {
		return instance.Report{}, fmt.Errorf("streaming replicas %q: %w", f[11], err)
	}
	if f[5] == "t" {
		a := &instance.ArchiverReport{LastArchivedWAL: f[6], LastFailedWAL: f[8]}
		if a.LastArchivedTime, err = parseEpoch(f[7]); err != nil {
			return instance.Report{}, fmt.Errorf("last_archived_time: %w", err)
		}
		if a.LastFailedTime, err = parseEpoch(f[9]); err != nil {
			return instance.Report{}, fmt.Errorf("last_failed_time: %w", err)
		}
		if a.Ready, err = strconv.Atoi(f[10]); err != nil {
			return instance.Report{}, fmt.Errorf("ready WAL files %q: %w", f[10], err)
		}
		r.Archive = a
	}
	return r, nil
}

// parseEpoch reads seconds since 1970 with up to nine decimals, exactly
// (a float64 would round away microseconds); "" is the zero time.
func parseEpoch(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	whole, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("epoch %q: %w", s, err)
	}
	var nsec int64
	if frac != "" {
		if len(frac) > 9 || strings.Trim(frac, "0123456789") != "" {
			return time.Time{}, fmt.Errorf("epoch %q: want seconds with at most nine decimals", s)
		}
		if nsec, err = strconv.ParseInt((frac + "000000000")[:9], 10, 64); err != nil {
			return time.Time{}, fmt.Errorf("epoch %q: %w", s, err)
		}
	}
	return time.Unix(sec, nsec).UTC(), nil
}

// Promote implements Engine: pg_promote waits until the server has left
// recovery (at most a minute).
func (p Postgres) Promote(ctx context.Context) error {
	out, err := p.psql(ctx, 70*time.Second, "SELECT pg_promote(true, 60)")
	if err != nil {
		return err
	}
	if out != "t" {
		return fmt.Errorf("pg_promote did not complete within 60 s")
	}
	return nil
}

// ConfigurePrimary implements Engine: synchronous replication is switched
// on (or off) here, with ALTER SYSTEM and a reload, not in the
// configuration file. The image's temporary server that initialises a data
// directory (or loads a restore) reads that file too, and its commits
// would wait for a standby that cannot exist yet.
func (p Postgres) ConfigurePrimary(ctx context.Context) error {
	current, err := p.psql(ctx, 5*time.Second, "SELECT current_setting('synchronous_standby_names')")
	if err != nil {
		return err
	}
	if current == p.SynchronousStandbyNames {
		return nil
	}
	quoted := "'" + strings.ReplaceAll(p.SynchronousStandbyNames, "'", "''") + "'"
	if _, err := p.psql(ctx, 5*time.Second, "ALTER SYSTEM SET synchronous_standby_names = "+quoted); err != nil {
		return err
	}
	_, err = p.psql(ctx, 5*time.Second, "SELECT pg_reload_conf()")
	return err
}
