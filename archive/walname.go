// Package archive keeps a PostgreSQL Database's continuous archive in an
// object store: every WAL segment the primary completes, the timeline
// history files, and base backups, under one key prefix per Database:
//
//	<prefix>/<database>/owner                 which Database archives here
//	<prefix>/<database>/wal/<file>.gz         WAL segments and history files, gzip
//	<prefix>/<database>/base/<id>/base.tar    a base backup (pg_basebackup -Ft)
//	<prefix>/<database>/base/<id>/backup.json its record, written last
//
// A WAL file is never overwritten with different content (the object store
// refuses it), so two servers pushing the same segment, such as a primary
// and the replica that received it, agree or fail loudly. Restoring reads a
// base backup and the WAL after it; a segment missing from the chain or
// whose content does not match its recorded SHA-256 stops the restore with
// an error instead of ending recovery early.
package archive

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// SegmentSize is the WAL segment size: initdb's default, which the
// operator never changes.
const SegmentSize = 16 << 20

const segmentsPerXLogID = 0x100000000 / SegmentSize

// LSN is a WAL location.
type LSN uint64

// ParseLSN parses PostgreSQL's "X/Y" form.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
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

// Segment is the number of the WAL segment that holds l.
func (l LSN) Segment() uint64 { return uint64(l) / SegmentSize }

// SegmentName is the file name of segment seg on timeline tli.
func SegmentName(tli uint32, seg uint64) string {
	return fmt.Sprintf("%08X%08X%08X", tli, seg/segmentsPerXLogID, seg%segmentsPerXLogID)
}

var segmentRE = regexp.MustCompile(`^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$`)

// ParseSegmentName returns the timeline and segment number of a WAL
// segment's file name; ok is false for any other file (history, .partial,
// .backup).
func ParseSegmentName(name string) (tli uint32, seg uint64, ok bool) {
	m := segmentRE.FindStringSubmatch(name)
	if m == nil {
		return 0, 0, false
	}
	t, _ := strconv.ParseUint(m[1], 16, 32)
	hi, _ := strconv.ParseUint(m[2], 16, 32)
	lo, _ := strconv.ParseUint(m[3], 16, 32)
	if lo >= segmentsPerXLogID {
		return 0, 0, false
	}
	return uint32(t), hi*segmentsPerXLogID + lo, true
}

var historyRE = regexp.MustCompile(`^([0-9A-F]{8})\.history$`)

// ParseHistoryName returns the timeline of a timeline history file's name.
func ParseHistoryName(name string) (uint32, bool) {
	m := historyRE.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	t, _ := strconv.ParseUint(m[1], 16, 32)
	return uint32(t), true
}

// HistoryName is the file name of timeline tli's history file.
func HistoryName(tli uint32) string { return fmt.Sprintf("%08X.history", tli) }

// Switch is one line of a timeline history file: timeline Parent ended at
// At, where its child began.
type Switch struct {
	Parent uint32
	At     LSN
}

// ParseHistory parses a timeline history file: one "parentTLI switchpoint
// reason" line per ancestor, oldest first.
func ParseHistory(content string) ([]Switch, error) {
	var out []Switch
	for i, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("timeline history line %d %q: want parent timeline and switch point", i+1, line)
		}
		tli, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("timeline history line %d: %w", i+1, err)
		}
		at, err := ParseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("timeline history line %d: %w", i+1, err)
		}
		out = append(out, Switch{Parent: uint32(tli), At: at})
	}
	return out, nil
}
