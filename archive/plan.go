package archive

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Retention is what a retention run deletes.
type Retention struct {
	// Backups are the IDs of the base backups to delete.
	Backups []string
	// WAL are the names of the WAL files to delete.
	WAL []string
	// Kept is the oldest base backup kept, the start of the recoverable
	// window; nil when there is no backup.
	Kept *BaseBackup
}

// PlanRetention decides what to delete so that every moment of the last
// keep (from now) stays recoverable: the base backups that ended within
// keep stay, and so does the newest one that ended before it (a restore to
// the start of the window starts from it). The newest backup always stays,
// whatever the clocks say. WAL files stay from the oldest kept backup's
// first segment on, on every timeline; timeline history files always stay
// (they are small and recovery reads them to follow a timeline).
func PlanRetention(backups []BaseBackup, wal []WALFile, now time.Time, keep time.Duration) Retention {
	var r Retention
	if len(backups) == 0 {
		return r
	}
	sorted := append([]BaseBackup(nil), backups...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].EndTime.Before(sorted[j].EndTime) })
	cutoff := now.Add(-keep)
	// first is the oldest backup to keep: the newest that ended at or
	// before the cutoff, or the oldest of all if none did.
	first := 0
	for i, b := range sorted {
		if !b.EndTime.After(cutoff) {
			first = i
		}
	}
	for _, b := range sorted[:first] {
		r.Backups = append(r.Backups, b.ID)
	}
	kept := sorted[first]
	r.Kept = &kept
	_, keepFrom, ok := ParseSegmentName(kept.StartWAL)
	if !ok {
		return r
	}
	for _, w := range wal {
		if _, isHistory := ParseHistoryName(w.Name); isHistory {
			continue
		}
		// Segments, their .partial and .backup files: the segment number is
		// in the first 24 characters.
		if len(w.Name) < 24 {
			continue
		}
		if _, seg, ok := ParseSegmentName(w.Name[:24]); ok && seg < keepFrom {
			r.WAL = append(r.WAL, w.Name)
		}
	}
	return r
}

// Target is the moment a restore recovers to: a time, or the end of the
// archive when Time is zero.
type Target struct {
	Time time.Time
}

// Latest says whether t is the end of the archive.
func (t Target) Latest() bool { return t.Time.IsZero() }

func (t Target) String() string {
	if t.Latest() {
		return "latest"
	}
	return t.Time.UTC().Format(time.RFC3339Nano)
}

// ChooseBackup picks the base backup to restore for target: the newest that
// ended before the target time (or the newest of all for latest).
func ChooseBackup(backups []BaseBackup, target Target) (BaseBackup, error) {
	if len(backups) == 0 {
		return BaseBackup{}, fmt.Errorf("the archive holds no complete base backup")
	}
	sorted := append([]BaseBackup(nil), backups...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].EndTime.Before(sorted[j].EndTime) })
	if target.Latest() {
		return sorted[len(sorted)-1], nil
	}
	for i := len(sorted) - 1; i >= 0; i-- {
		if sorted[i].EndTime.Before(target.Time) {
			return sorted[i], nil
		}
	}
	return BaseBackup{}, fmt.Errorf("no base backup ended before %s: the earliest recoverable moment is %s",
		target, sorted[0].EndTime.UTC().Format(time.RFC3339))
}

// Gap is a WAL segment missing from the chain recovery replays.
type Gap struct {
	// Missing is the segment's file name.
	Missing string
	// After is the last segment before it that is there.
	After string
}

func (g *Gap) Error() string {
	return fmt.Sprintf("WAL segment %s is missing from the archive (the last one before it is %s): recovery would stop there and lose everything after it", g.Missing, g.After)
}

// CheckChain checks that the archive holds every WAL segment recovery
// from b replays to the end of the archive: from the backup's first
// segment to the last archived one of the newest timeline descending from
// the backup's, following the timeline switches in histories (a timeline's
// history file, parsed). Recovery reads each segment from the newest
// timeline that had begun by then; the segment holding a switch may come
// from either side of it. It returns the timeline and name of the chain's
// last segment, or a *Gap.
func CheckChain(b BaseBackup, wal []WALFile, histories map[uint32][]Switch) (uint32, string, error) {
	_, startSeg, ok := ParseSegmentName(b.StartWAL)
	if !ok {
		return 0, "", fmt.Errorf("base backup %s: start segment %q is not a WAL segment name", b.ID, b.StartWAL)
	}
	have := map[string]bool{}
	lastSeg := map[uint32]uint64{}
	for _, w := range wal {
		if tli, seg, ok := ParseSegmentName(w.Name); ok {
			have[w.Name] = true
			if last, seen := lastSeg[tli]; !seen || seg > last {
				lastSeg[tli] = seg
			}
		}
	}
	chain := timelineChain(b.Timeline, histories)
	// The chain ends on its newest timeline with archived segments; when
	// that is not the newest timeline, at the segment where the next began.
	end, found := uint64(0), false
	for i := len(chain) - 1; i >= 0; i-- {
		if last, ok := lastSeg[chain[i].tli]; ok {
			end, found = last, true
			if i < len(chain)-1 && chain[i+1].begin < end {
				end = chain[i+1].begin
			}
			break
		}
	}
	if !found || end < startSeg {
		return 0, "", &Gap{Missing: b.StartWAL, After: "(none)"}
	}
	prev, prevTLI := "", chain[0].tli
	for seg := startSeg; seg <= end; seg++ {
		i := len(chain) - 1
		for i > 0 && chain[i].begin > seg {
			i--
		}
		tli := chain[i].tli
		if !have[SegmentName(tli, seg)] && i > 0 && chain[i].begin == seg && have[SegmentName(chain[i-1].tli, seg)] {
			tli = chain[i-1].tli
		}
		name := SegmentName(tli, seg)
		if !have[name] {
			return 0, "", &Gap{Missing: name, After: prev}
		}
		prev, prevTLI = name, tli
	}
	return prevTLI, prev, nil
}

type chainLink struct {
	tli   uint32
	begin uint64 // the segment the timeline began in
}

// timelineChain is the path from timeline from to the newest timeline whose
// history descends from it, oldest first.
func timelineChain(from uint32, histories map[uint32][]Switch) []chainLink {
	newest := from
	for tli, switches := range histories {
		if tli <= newest {
			continue
		}
		for _, s := range switches {
			if s.Parent == from {
				newest = tli
				break
			}
		}
	}
	chain := []chainLink{{tli: from}}
	if newest == from {
		return chain
	}
	switches := histories[newest]
	for i, s := range switches {
		if s.Parent < from {
			continue
		}
		next := newest
		if i+1 < len(switches) {
			next = switches[i+1].Parent
		}
		chain = append(chain, chainLink{tli: next, begin: s.At.Segment()})
	}
	return chain
}

// RecoverySettings are the postgresql.auto.conf lines of an archive
// recovery to target, fetching WAL with restoreCommand.
func RecoverySettings(restoreCommand string, target Target) []string {
	lines := []string{
		"restore_command = " + quoteConf(restoreCommand),
		"recovery_target_timeline = 'latest'",
		"recovery_target_action = 'promote'",
	}
	if !target.Latest() {
		lines = append(lines,
			"recovery_target_time = "+quoteConf(target.Time.UTC().Format("2006-01-02 15:04:05.999999-07")),
			// Transactions committed exactly at the target are kept.
			"recovery_target_inclusive = on")
	}
	return lines
}

// quoteConf quotes a postgresql.conf string value.
func quoteConf(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") + "'"
}
