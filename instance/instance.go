// Package instance is the contract between the operator and the agent that
// runs each database pod: the label by which the operator assigns a pod its
// role, and the annotation in which the agent reports what its server is
// doing. It has no dependencies, so the agent binary stays small.
package instance

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Role is what a database pod is asked to be (LabelRole) or reports being
// (Report.Role).
type Role string

const (
	// Primary accepts writes; exactly one pod of a Database is asked to be it.
	Primary Role = "primary"
	// Replica streams from the primary and serves reads.
	Replica Role = "replica"
)

// RestoreFailedPrefix starts the termination message of a container whose
// restore failed (the restore script of a dump, or the agent's restore of
// an archive); the rest is the reason, which the operator reports.
const RestoreFailedPrefix = "database-operator: restore failed: "

const (
	// LabelRole is set by the operator on every database pod: the role the
	// pod must take. The read-write Service selects the pod labelled
	// primary; the agent promotes or demotes its server to match.
	LabelRole = "database.example.com/role"

	// AnnotationReport is set by the agent on its own pod: a Report as JSON.
	AnnotationReport = "database.example.com/instance"
)

// Report is what the agent last observed of its server. The agent writes it
// when anything but the positions changes, and at most every
// PositionInterval while only the positions move.
type Report struct {
	// Role is the role the server runs in now; empty while it is not
	// running or does not answer.
	Role Role `json:"role,omitempty"`
	// Timeline is the PostgreSQL timeline the server is on (0 for MySQL).
	Timeline int64 `json:"timeline,omitempty"`
	// Position is how far the server's copy of the history reaches: on a
	// PostgreSQL primary its current WAL location, on a replica the last
	// location it received and flushed; for MySQL the executed GTID set.
	Position string `json:"position,omitempty"`
	// ReplayPosition is how far a PostgreSQL replica has applied what it
	// received.
	ReplayPosition string `json:"replayPosition,omitempty"`
	// Streaming says a replica is connected to its upstream and receiving.
	Streaming bool `json:"streaming,omitempty"`
	// PrimaryUnreachable says a replica that is not streaming cannot even
	// open a TCP connection to the primary's address: the primary, or its
	// node, is gone, not merely slow to accept the replica back.
	PrimaryUnreachable bool `json:"primaryUnreachable,omitempty"`
	// StreamingReplicas is, on a PostgreSQL primary, how many replicas
	// stream from it (pg_stat_replication in state streaming; a lost
	// replica leaves it after wal_sender_timeout). The agent of a primary
	// that loses them all and cannot reach the API server either fences
	// itself. Not reported for MySQL.
	StreamingReplicas int `json:"streamingReplicas,omitempty"`
	// VolumeBytes is the size of the filesystem of the pod's data volume,
	// and VolumeFreeBytes what of it is free for the server (statfs); 0
	// when not measured. Reported whether the server runs or not: a full
	// volume is often why it does not.
	VolumeBytes     int64 `json:"volumeBytes,omitempty"`
	VolumeFreeBytes int64 `json:"volumeFreeBytes,omitempty"`
	// Stopping says the agent asked the server to stop and it has not
	// exited yet: a primary shutting down still sends its last WAL to the
	// replicas, so none may be promoted before it has exited.
	Stopping bool `json:"stopping,omitempty"`
	// Archive is what the server's WAL archiver last did (PostgreSQL
	// with continuous archiving; nil otherwise).
	Archive *ArchiverReport `json:"archive,omitempty"`
	// Message says what the agent is waiting for or what failed, for
	// people; never a secret.
	Message string `json:"message,omitempty"`
	// ObservedAt is when the agent observed this, RFC 3339 with
	// nanoseconds.
	ObservedAt time.Time `json:"observedAt"`
}

// VolumeNearlyFullMinFree is the free space under which a data volume is
// nearly full whatever its size: a PostgreSQL server needs a 16 MiB WAL
// segment at a time.
const VolumeNearlyFullMinFree = 32 << 20

// VolumeNearlyFull says the data volume has less than 5% of it or less
// than VolumeNearlyFullMinFree free: writes are about to fail (PostgreSQL
// stops when it cannot write WAL).
func (r Report) VolumeNearlyFull() bool {
	return r.VolumeBytes > 0 && (r.VolumeFreeBytes*20 < r.VolumeBytes || r.VolumeFreeBytes < VolumeNearlyFullMinFree)
}

// PositionInterval bounds how often a report is written while only the
// positions change: a replica's lag in the status is at most this old.
const PositionInterval = 10 * time.Second

// ParseReport decodes AnnotationReport's value.
func ParseReport(s string) (Report, error) {
	var r Report
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return Report{}, fmt.Errorf("instance report %q: %w", s, err)
	}
	return r, nil
}

// String encodes the report for AnnotationReport.
func (r Report) String() string {
	b, err := json.Marshal(r)
	if err != nil {
		// A Report holds only strings, numbers, booleans and a time.
		panic(err)
	}
	return string(b)
}

// ArchiverReport is PostgreSQL's pg_stat_archiver on one server: with
// archive_mode=always every server archives, replicas included, so a
// promoted replica's archiver has been running all along.
type ArchiverReport struct {
	// LastArchivedWAL and LastArchivedTime are the newest WAL file the
	// server archived, and when.
	LastArchivedWAL  string    `json:"lastArchivedWAL,omitempty"`
	LastArchivedTime time.Time `json:"lastArchivedTime,omitzero"`
	// LastFailedWAL and LastFailedTime are its latest failed attempt.
	LastFailedWAL  string    `json:"lastFailedWAL,omitempty"`
	LastFailedTime time.Time `json:"lastFailedTime,omitzero"`
	// Ready counts the WAL files complete and waiting to be archived: more
	// than a few means archiving falls behind.
	Ready int `json:"ready,omitempty"`
}

// Failing says the latest attempt failed: the failure is newer than the
// last success.
func (a *ArchiverReport) Failing() bool {
	return a != nil && !a.LastFailedTime.IsZero() && a.LastFailedTime.After(a.LastArchivedTime)
}

// SameExceptPositions says two reports differ at most in their positions,
// their archiver's progress and observation time: such a change alone need
// not be written at once.
func (r Report) SameExceptPositions(o Report) bool {
	return r.withoutPositions() == o.withoutPositions()
}

// SamePositions says two reports have the same positions and archiver
// state.
func (r Report) SamePositions(o Report) bool {
	return r.Position == o.Position && r.ReplayPosition == o.ReplayPosition && r.archiveValue() == o.archiveValue() &&
		r.VolumeBytes == o.VolumeBytes && r.VolumeFreeBytes == o.VolumeFreeBytes
}

// withoutPositions is the report without what moves with the WAL, as a
// comparable value; whether the archiver fails is kept, it is news.
func (r Report) withoutPositions() Report {
	failing, full := r.Archive.Failing(), r.VolumeNearlyFull()
	r.Position, r.ReplayPosition, r.ObservedAt = "", "", time.Time{}
	r.Archive = nil
	if failing {
		r.Archive = failingArchiver
	}
	// The free space moves like a position; a volume becoming nearly full
	// (or no longer) is news, written at once.
	r.VolumeBytes, r.VolumeFreeBytes = 0, 0
	if full {
		r.VolumeBytes = -1
	}
	return r
}

// failingArchiver stands in for any failing archiver in withoutPositions,
// so that reports compare equal whatever the failure's details.
var failingArchiver = &ArchiverReport{LastFailedWAL: "failing"}

func (r Report) archiveValue() ArchiverReport {
	if r.Archive == nil {
		return ArchiverReport{}
	}
	return *r.Archive
}

// LSN is a PostgreSQL WAL location.
type LSN uint64

// ParseLSN reads PostgreSQL's text form of a WAL location, "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("WAL location %q: want X/Y", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("WAL location %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("WAL location %q: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xffffffff) }
