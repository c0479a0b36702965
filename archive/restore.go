package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// RecoverySignal and AutoConf are the files in the data directory that
// start and configure an archive recovery.
const (
	RecoverySignal = "recovery.signal"
	AutoConf       = "postgresql.auto.conf"
)

// PrepareRestore fills pgdata, which must not exist or be empty, from the
// base backup that reaches target, and configures the archive recovery that
// the next server start performs: recovery.signal, and recovery settings
// that fetch WAL with restoreCommand. For latest, it first checks that the
// archive's WAL chain has no gap (a gap would end recovery early, silently);
// for a time, PostgreSQL itself refuses to end recovery before the target.
func (a *Archive) PrepareRestore(ctx context.Context, pgdata, restoreCommand string, target Target) (BaseBackup, error) {
	backups, err := a.ListBackups(ctx)
	if err != nil {
		return BaseBackup{}, err
	}
	b, err := ChooseBackup(backups, target)
	if err != nil {
		return BaseBackup{}, fmt.Errorf("%s: %w", a.Location(), err)
	}
	if target.Latest() {
		if _, _, err := a.Chain(ctx, b); err != nil {
			return b, fmt.Errorf("%s: %w", a.Location(), err)
		}
	}
	if err := emptyDir(pgdata); err != nil {
		return b, err
	}
	r, err := a.OpenBackup(ctx, b)
	if err != nil {
		return b, err
	}
	defer r.Close()
	if err := extractTar(r, pgdata); err != nil {
		return b, fmt.Errorf("base backup %s: %w", b.ID, err)
	}
	if err := os.WriteFile(filepath.Join(pgdata, RecoverySignal), nil, 0o600); err != nil {
		return b, err
	}
	if err := appendLines(filepath.Join(pgdata, AutoConf), RecoverySettings(restoreCommand, target)); err != nil {
		return b, err
	}
	return b, nil
}

// Chain checks the archive's WAL chain from b on (CheckChain), reading the
// timeline history files it holds.
func (a *Archive) Chain(ctx context.Context, b BaseBackup) (uint32, string, error) {
	wal, err := a.ListWAL(ctx)
	if err != nil {
		return 0, "", err
	}
	histories := map[uint32][]Switch{}
	for _, w := range wal {
		tli, ok := ParseHistoryName(w.Name)
		if !ok {
			continue
		}
		raw, err := a.fetch(ctx, w.Name)
		if err != nil {
			return 0, "", err
		}
		sw, err := ParseHistory(string(raw))
		if err != nil {
			return 0, "", fmt.Errorf("%s: %w", w.Name, err)
		}
		histories[tli] = sw
	}
	return CheckChain(b, wal, histories)
}

// ClearRecoverySettings removes the lines PrepareRestore added to
// postgresql.auto.conf, once recovery is over: the restored server, and the
// replicas that copy its data directory, must not keep reading the source's
// archive.
func ClearRecoverySettings(pgdata string) error {
	path := filepath.Join(pgdata, AutoConf)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var kept []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == restoreComment {
			continue
		}
		key, _, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch strings.TrimSpace(key) {
		case "restore_command", "recovery_target_timeline", "recovery_target_action", "recovery_target_time", "recovery_target_inclusive":
			continue
		}
		kept = append(kept, line)
	}
	return writeFileSync(path, []byte(strings.Join(kept, "\n")), 0o600)
}

func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty: a restore only fills an empty data directory", dir)
	}
	return os.Chmod(dir, 0o700)
}

// extractTar unpacks pg_basebackup's tar format into dir, refusing any
// entry that would land outside it and links of any kind (the operator's
// Databases have no tablespaces).
func extractTar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the backup: %w", err)
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("backup entry %q is outside the data directory", h.Name)
		}
		target := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return fmt.Errorf("writing %s: %w", name, err)
			}
			if err := f.Close(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("backup entry %q is a link or special file (type %q): tablespaces are not supported", h.Name, h.Typeflag)
		}
	}
	// The end of the tar stream is not the end of the object: read on so
	// the verifying reader checks the whole content.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("reading the backup: %w", err)
	}
	return nil
}

const restoreComment = "# Added by database-operator for the restore; removed when it is done."

func appendLines(path string, lines []string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	content := string(old)
	if content != "" && !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	content += restoreComment + "\n" + strings.Join(lines, "\n") + "\n"
	return writeFileSync(path, []byte(content), 0o600)
}

func writeFileSync(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
