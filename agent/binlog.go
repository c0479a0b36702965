package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/example/database-operator/archive"
	"github.com/example/database-operator/instance"
)

// Archiver is an Engine that archives outside the server: the agent asks
// it once per observation of a server it made the primary, and puts what it
// says in the report.
type Archiver interface {
	// Archive starts a round of archiving unless one is running, and
	// returns how archiving went so far.
	Archive() *instance.ArchiverReport
}

// BinlogShipper ships a MySQL primary's closed binary log files to the
// archive, and closes the current file (FLUSH BINARY LOGS) once it holds
// transactions and has been current for Timeout: the bound on what a
// restore to the end of the archive can lose, like PostgreSQL's
// archive_timeout. Rounds run in the background, so a slow or unreachable
// object store never holds up the agent's loop (reports, promotions).
//
// A server ships only while the operator has made it the primary. A
// replica promoted for the first time ships its files from where the
// archive ends on (the newest archived event of the other servers, less
// ClockMargin for their clocks): those before hold only what the former
// primary archived already. A server that has archived before ships every
// file after its last archived one, so its files in the archive never have
// a hole (a restore refuses one).
type BinlogShipper struct {
	// Archive is where the files go.
	Archive *archive.Archive
	// Owner is who archives there (archive.Archive.Claim).
	Owner archive.Owner
	// Server is the server's identity in the archive;
	// MySQL.ServerIdentity when empty.
	Server string
	// Timeout closes a current file with transactions this old.
	Timeout time.Duration
	// Log is where rounds' failures go.
	Log *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	// round serialises rounds (Kick's and Round's callers).
	round sync.Mutex

	mu      sync.Mutex
	busy    bool
	report  instance.ArchiverReport
	dir     string // where the server's binary logs are
	shipped map[string]bool
	from    time.Time // ship files whose last event is at or after this
	current string
	since   time.Time
	hasTx   bool
}

// RoundTimeout bounds one round of shipping.
const RoundTimeout = 2 * time.Minute

// ClockMargin is how much earlier than the archive's end a first-time
// primary starts shipping: the servers' clocks may differ by that much.
const ClockMargin = 5 * time.Minute

// Kick starts a round against m unless one is running, and returns the
// report so far.
func (s *BinlogShipper) Kick(m MySQL) *instance.ArchiverReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.busy {
		s.busy = true
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), RoundTimeout)
			defer cancel()
			err := s.Round(ctx, m)
			s.mu.Lock()
			s.busy = false
			s.mu.Unlock()
			if err != nil && s.Log != nil {
				s.Log.Error("archiving binary logs", "err", err)
			}
		}()
	}
	r := s.report
	return &r
}

// Report is how archiving went so far.
func (s *BinlogShipper) Report() instance.ArchiverReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.report
}

func (s *BinlogShipper) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// binlogDir is the directory of the server's binary log files.
func (m MySQL) binlogDir(ctx context.Context) (string, error) {
	base, err := m.query(ctx, 5*time.Second, "SELECT @@global.log_bin_basename", false)
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(base)), nil
}

// binlogs is the server's binary log files, oldest first, the last being
// current.
func (m MySQL) binlogs(ctx context.Context) ([]string, error) {
	out, err := m.query(ctx, 5*time.Second, "SHOW BINARY LOGS", false)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if name, _, ok := strings.Cut(line, "\t"); ok && name != "" {
			files = append(files, name)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("the server has no binary log (is log_bin on?)")
	}
	return files, nil
}

// Round ships what is due once, synchronously (Kick runs it in the
// background); rounds never overlap. A round that fails records the file
// it was at; one that succeeds clears the failure, so an idle primary that
// recovered from a failure does not look failing for ever.
func (s *BinlogShipper) Round(ctx context.Context, m MySQL) error {
	s.round.Lock()
	defer s.round.Unlock()
	failed, err := s.ship(ctx, m)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.report.LastFailedWAL, s.report.LastFailedTime = failed, s.now().UTC()
	} else {
		s.report.LastFailedWAL, s.report.LastFailedTime = "", time.Time{}
	}
	return err
}

// ship is a round's work; failed names the file it failed at (the current
// one when no file is to blame).
func (s *BinlogShipper) ship(ctx context.Context, m MySQL) (failed string, err error) {
	failed = s.current
	if s.shipped == nil {
		if err := s.start(ctx, m); err != nil {
			return failed, err
		}
	}
	files, err := m.binlogs(ctx)
	if err != nil {
		return failed, err
	}
	closed, current := files[:len(files)-1], files[len(files)-1]
	ready := 0
	for _, name := range closed {
		if !s.shipped[name] {
			ready++
		}
	}
	s.setReady(ready)
	for _, name := range closed {
		if s.shipped[name] {
			continue
		}
		path := filepath.Join(s.dir, name)
		if !s.from.IsZero() {
			if span, err := spanOf(path); err == nil && span.Last.Before(s.from) {
				// Older than the archive's end: the former primary
				// archived what it holds.
				s.shipped[name] = true
				ready--
				s.setReady(ready)
				continue
			}
		}
		if _, err := s.Archive.PushBinlog(ctx, s.Server, path); err != nil {
			return name, err
		}
		// From the first file shipped on, every later one goes.
		s.from = time.Time{}
		s.shipped[name] = true
		ready--
		s.mu.Lock()
		s.report.LastArchivedWAL, s.report.LastArchivedTime, s.report.Ready = name, s.now().UTC(), ready
		s.mu.Unlock()
	}
	return current, s.closeWhenDue(ctx, m, filepath.Join(s.dir, current))
}

func (s *BinlogShipper) setReady(n int) {
	s.mu.Lock()
	s.report.Ready = n
	s.mu.Unlock()
}

// start learns who the server is and what the archive holds.
func (s *BinlogShipper) start(ctx context.Context, m MySQL) error {
	if s.Server == "" {
		id, err := m.ServerIdentity(ctx)
		if err != nil {
			return err
		}
		s.Server = id
	}
	// The directory is the server's configuration: asked once, not every
	// round.
	dir, err := m.binlogDir(ctx)
	if err != nil {
		return err
	}
	if err := s.Archive.Claim(ctx, s.Owner); err != nil {
		return err
	}
	files, err := s.Archive.ListBinlogs(ctx)
	if err != nil {
		return err
	}
	s.dir = dir
	s.shipped, s.from = shippingFrom(files, s.Server)
	return nil
}

// shippingFrom is what server has archived, and the time before which its
// closed files need not be shipped (zero: ship them all): only a server
// that has archived nothing skips, the files that end before the other
// servers' newest archived event less ClockMargin.
func shippingFrom(files []archive.BinlogFile, server string) (map[string]bool, time.Time) {
	shipped := map[string]bool{}
	var from time.Time
	for _, f := range files {
		if f.Server == server {
			shipped[f.Name] = true
		} else if f.Last.After(from) {
			from = f.Last
		}
	}
	if len(shipped) > 0 || from.IsZero() {
		return shipped, time.Time{}
	}
	return shipped, from.Add(-ClockMargin)
}

// closeWhenDue closes the current file once it holds transactions and has
// been current for Timeout.
func (s *BinlogShipper) closeWhenDue(ctx context.Context, m MySQL, path string) error {
	now := s.now()
	if name := filepath.Base(path); name != s.current {
		s.current, s.since, s.hasTx = name, now, false
	}
	if s.Timeout <= 0 || now.Sub(s.since) < s.Timeout {
		return nil
	}
	if !s.hasTx {
		span, err := spanOf(path)
		if err != nil {
			return err
		}
		s.hasTx = span.Transactions
	}
	if !s.hasTx {
		return nil
	}
	if _, err := m.query(ctx, 10*time.Second, "FLUSH BINARY LOGS", false); err != nil {
		return fmt.Errorf("closing binary log %s for archiving: %w", s.current, err)
	}
	return nil
}

func spanOf(path string) (archive.BinlogSpan, error) {
	f, err := os.Open(path)
	if err != nil {
		return archive.BinlogSpan{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return archive.BinlogSpan{}, err
	}
	span, err := archive.ReadBinlogSpan(f, st.Size())
	if err != nil {
		return span, fmt.Errorf("%s: %w", path, err)
	}
	return span, nil
}

// Archive implements Archiver when the server's binary logs are shipped.
func (m MySQL) Archive() *instance.ArchiverReport {
	if m.Binlogs == nil {
		return nil
	}
	return m.Binlogs.Kick(m)
}
