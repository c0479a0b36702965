package archive

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// ReplayStep is one archived binary log file a MySQL restore replays:
// from Start (0: from its beginning) to the restore's target.
type ReplayStep struct {
	File  BinlogFile
	Start int64
}

// BinlogGap is a binary log file missing from what a restore replays.
type BinlogGap struct {
	// Server is the server whose file is missing.
	Server string
	// Missing is the missing file's name; After the last one before it.
	Missing, After string
}

func (g *BinlogGap) Error() string {
	return fmt.Sprintf("binary log %s of server %s is missing from the archive (the last one before it is %s): the restore would lose everything after it",
		g.Missing, g.Server, g.After)
}

// PlanBinlogReplay decides which archived binary log files a restore from
// the MySQL dump b replays to reach target, in order:
//
//   - the files of the server the dump was taken on, from the dump's
//     position on, with no number missing;
//   - then the files of other servers (a primary after a failover) whose
//     last event is at or after the dump's start, in the order they
//     began, each server's with no number missing. Such a server's files repeat what it replicated from
//     the former primary: the restoring server skips the transactions whose
//     GTIDs it has already executed (MySQL's GTID auto-skip);
//   - for a target time, no file that began after it, and the files must
//     reach it: a target later than every archived event is an error, not a
//     silent restore to the end (a server with no writes since then has
//     nothing to archive: restore to latest instead).
func PlanBinlogReplay(b BaseBackup, files []BinlogFile, target Target) ([]ReplayStep, error) {
	if b.BinlogServer == "" || b.BinlogFile == "" {
		return nil, fmt.Errorf("base dump %s records no binary log position", b.ID)
	}
	startSeq, ok := binlogSeq(b.BinlogFile)
	if !ok {
		return nil, fmt.Errorf("base dump %s: binary log %q has no number", b.ID, b.BinlogFile)
	}
	byServer := map[string][]BinlogFile{}
	for _, f := range files {
		byServer[f.Server] = append(byServer[f.Server], f)
	}
	for _, fs := range byServer {
		sort.Slice(fs, func(i, j int) bool { return fs[i].Seq < fs[j].Seq })
	}
	before := func(f BinlogFile) bool { return target.Latest() || !f.First.After(target.Time) }

	var steps []ReplayStep
	prev := b.BinlogFile
	next := startSeq
	for _, f := range byServer[b.BinlogServer] {
		if f.Seq < startSeq {
			continue
		}
		// A missing file is a gap even when the next one is past the
		// target: the missing one may hold events before it.
		if f.Seq != next {
			return nil, &BinlogGap{Server: b.BinlogServer, Missing: renumber(b.BinlogFile, next), After: prev}
		}
		if !before(f) {
			break
		}
		step := ReplayStep{File: f}
		if f.Seq == startSeq {
			step.Start = b.BinlogPosition
		}
		steps = append(steps, step)
		prev, next = f.Name, f.Seq+1
	}

	var others []BinlogFile
	for server, fs := range byServer {
		if server == b.BinlogServer {
			continue
		}
		var kept []BinlogFile
		for _, f := range fs {
			if !f.Last.Before(b.StartTime.Truncate(time.Second)) {
				kept = append(kept, f)
			}
		}
		for i, f := range kept {
			if i > 0 && f.Seq != kept[i-1].Seq+1 {
				return nil, &BinlogGap{Server: server, Missing: renumber(kept[i-1].Name, kept[i-1].Seq+1), After: kept[i-1].Name}
			}
			if !before(f) {
				break
			}
			others = append(others, f)
		}
	}
	sort.SliceStable(others, func(i, j int) bool {
		if !others[i].First.Equal(others[j].First) {
			return others[i].First.Before(others[j].First)
		}
		if others[i].Server != others[j].Server {
			return others[i].Server < others[j].Server
		}
		return others[i].Seq < others[j].Seq
	})
	for _, f := range others {
		steps = append(steps, ReplayStep{File: f})
	}

	if !target.Latest() {
		end := b.EndTime
		for _, s := range steps {
			if s.File.Last.After(end) {
				end = s.File.Last
			}
		}
		// Events are stamped to the second: an event in the target's second
		// or later shows the archive reaches the target.
		if end.Before(target.Time.Truncate(time.Second)) {
			return nil, fmt.Errorf("the archive ends at %s, before the target %s: no archived binary log reaches it (restore to latest for everything archived)",
				end.UTC().Format(time.RFC3339), target)
		}
	}
	return steps, nil
}

// BinlogName is name with its number replaced by seq, in as many digits.
func BinlogName(name string, seq uint64) string { return renumber(name, seq) }

func renumber(name string, seq uint64) string {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return fmt.Sprintf("%s.%06d", name, seq)
	}
	return fmt.Sprintf("%s.%0*d", name[:i], len(name)-i-1, seq)
}

// PlanBinlogRetention is the binary log files no kept base dump needs: on
// every server, those whose last event is older than the start of kept,
// the oldest base dump retention keeps (nil: keep everything).
func PlanBinlogRetention(kept *BaseBackup, files []BinlogFile) []BinlogFile {
	if kept == nil {
		return nil
	}
	var out []BinlogFile
	for _, f := range files {
		if f.Last.Before(kept.StartTime.Truncate(time.Second)) {
			out = append(out, f)
		}
	}
	return out
}
