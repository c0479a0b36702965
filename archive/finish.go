package archive

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Roles are the restored Database's users. The data directory holds the
// source's users and passwords; FinishRestore gives them the new
// Database's names and passwords, so nothing the source's credentials
// Secret holds opens the restored copy.
type Roles struct {
	// SuperuserPassword is the password of postgres.
	SuperuserPassword string
	// AppUser and AppDatabase are the restored Database's application
	// user and database; SourceAppUser and SourceAppDatabase the source's
	// (renamed when they differ).
	AppUser, AppPassword, AppDatabase string
	SourceAppUser, SourceAppDatabase  string
	// ReplicationUser and ReplicationPassword are the replication user's.
	ReplicationUser, ReplicationPassword string
}

// FinishRestore runs the recovery PrepareRestore configured, on a private
// server (no TCP, a socket in a temporary directory that only this process
// can reach, trust authentication there), waits until it has replayed to
// the target and promoted, gives the users their new names and passwords,
// checkpoints and stops it, and removes the recovery settings. A recovery
// that cannot reach its target fails here with the server's own words.
func FinishRestore(ctx context.Context, pgdata string, roles Roles, timeout time.Duration) error {
	sql, err := rolesSQL(roles)
	if err != nil {
		return err
	}
	err = recoverPrivately(ctx, pgdata, timeout, func(sock string) error {
		if _, err := psql(ctx, sock, "postgres", sql); err != nil {
			return fmt.Errorf("giving the restored users their new names and passwords: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return ClearRecoverySettings(pgdata)
}

// VerifyRestore runs the recovery PrepareRestore configured, as
// FinishRestore does, then query in database, and returns its answer. The
// data directory is a throwaway: its users keep the source's names.
func VerifyRestore(ctx context.Context, pgdata, database, query string, timeout time.Duration) (string, error) {
	var answer string
	err := recoverPrivately(ctx, pgdata, timeout, func(sock string) error {
		out, err := psql(ctx, sock, database, query)
		if err != nil {
			return fmt.Errorf("the check query failed on the restored copy: %w", err)
		}
		answer = strings.TrimSpace(out)
		return nil
	})
	return answer, err
}

// recoverPrivately starts the server of pgdata privately, waits until it
// has recovered and promoted, runs work with the socket directory, and
// stops the server.
func recoverPrivately(ctx context.Context, pgdata string, timeout time.Duration, work func(sock string) error) error {
	sock, err := os.MkdirTemp("", "restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(sock)
	hba := filepath.Join(sock, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte("local all all trust\n"), 0o600); err != nil {
		return err
	}
	logPath := filepath.Join(sock, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	server := exec.Command("postgres", "-D", pgdata,
		"-c", "listen_addresses=", "-c", "unix_socket_directories="+sock, "-c", "hba_file="+hba,
		"-c", "archive_mode=off", "-c", "hot_standby=off", "-c", "ssl=off")
	server.Stdout, server.Stderr = logFile, logFile
	if err := server.Start(); err != nil {
		return fmt.Errorf("starting the recovery server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- server.Wait() }()
	stop := func() error {
		_ = server.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			return err
		case <-time.After(2 * time.Minute):
			_ = server.Process.Kill()
			return errors.New("the recovery server did not stop within 2m")
		}
	}
	serverLog := func() string {
		data, _ := os.ReadFile(logPath)
		return LastLines(string(data), 8)
	}

	deadline := time.Now().Add(timeout)
	for {
		out, err := psql(ctx, sock, "postgres", "SELECT pg_is_in_recovery()")
		if err == nil && strings.TrimSpace(out) == "f" {
			break
		}
		select {
		case err := <-exited:
			return fmt.Errorf("recovery failed (the server exited: %v): %s", err, serverLog())
		case <-ctx.Done():
			_ = stop()
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = stop()
			return fmt.Errorf("recovery did not finish within %s: %s", timeout, serverLog())
		}
	}
	if err := work(sock); err != nil {
		_ = stop()
		return err
	}
	if err := stop(); err != nil {
		return fmt.Errorf("stopping the recovery server: %w: %s", err, serverLog())
	}
	return nil
}

// rolesSQL renames the application user and database when the restored
// Database's differ from the source's, and sets every password as a SCRAM
// verifier computed here, so no password reaches the server or its log in
// clear.
func rolesSQL(r Roles) (string, error) {
	var b strings.Builder
	b.WriteString("\\set ON_ERROR_STOP on\n")
	if r.SourceAppUser != "" && r.SourceAppUser != r.AppUser {
		fmt.Fprintf(&b, "ALTER ROLE %s RENAME TO %s;\n", quoteIdent(r.SourceAppUser), quoteIdent(r.AppUser))
	}
	if r.SourceAppDatabase != "" && r.SourceAppDatabase != r.AppDatabase {
		fmt.Fprintf(&b, "ALTER DATABASE %s RENAME TO %s;\n", quoteIdent(r.SourceAppDatabase), quoteIdent(r.AppDatabase))
	}
	for _, u := range []struct{ name, password string }{
		{"postgres", r.SuperuserPassword}, {r.AppUser, r.AppPassword}, {r.ReplicationUser, r.ReplicationPassword},
	} {
		if u.name == "" || u.password == "" {
			return "", fmt.Errorf("the restored Database's user %q has no name or password", u.name)
		}
		verifier, err := scramVerifier(u.password)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "ALTER ROLE %s PASSWORD '%s';\n", quoteIdent(u.name), verifier)
	}
	b.WriteString("CHECKPOINT;\n")
	return b.String(), nil
}

// scramVerifier is the SCRAM-SHA-256 secret PostgreSQL stores for password
// (RFC 5802, 7677): what the server would compute, with a random salt.
func scramVerifier(password string) (string, error) {
	const iterations = 4096
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	server := mac(salted, "Server Key")
	enc := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, enc(salt), enc(stored[:]), enc(server)), nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// psql runs sql (from stdin, never the command line) as postgres on the
// private socket.
func psql(ctx context.Context, sock, database, sql string) (string, error) {
	// ON_ERROR_STOP: without it psql runs on past a failed statement and
	// exits 0.
	cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", sock, "-U", "postgres", "-d", database, "-f", "-")
	cmd.Stdin = strings.NewReader(sql)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=5")
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("psql: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}
