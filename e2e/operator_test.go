package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// operatorProcess is one run of the operator binary, logging to a file.
type operatorProcess struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	// exited is closed once the process has exited; waitErr is then its
	// exit status.
	exited  chan struct{}
	waitErr error
}

// startOperator starts the operator binary with the suite's settings
// (the test cluster, no metrics or probe listeners, console logs) plus
// extra flags. Its log goes to a file in dir.
func startOperator(dir, name string, extra ...string) (*operatorProcess, error) {
	return startOperatorWith(dir, name, kubeconfigPath, nil, extra...)
}

// startOperatorWith starts the operator binary like startOperator, but
// with the given kubeconfig and environment added to the test's
// (POD_NAMESPACE included, when env sets it).
func startOperatorWith(dir, name, kubeconfig string, env []string, extra ...string) (*operatorProcess, error) {
	f, err := os.CreateTemp(dir, "operator-"+name+"-*.log")
	if err != nil {
		return nil, fmt.Errorf("operator %s: log file: %w", name, err)
	}
	args := append([]string{
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "0",
		"--log-format", "console",
	}, extra...)
	cmd := exec.Command(operatorBinary, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Never outlive the test binary, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// POD_NAMESPACE would move the leader election Lease; the suite expects
	// the out-of-cluster default unless env sets it.
	cmd.Env = append(withoutEnv(os.Environ(), "POD_NAMESPACE"), env...)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("operator %s: start %s: %w", name, operatorBinary, err)
	}
	p := &operatorProcess{name: name, cmd: cmd, logPath: f.Name(), logFile: f, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// running reports whether the process has not exited.
func (p *operatorProcess) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// terminate sends SIGTERM and waits for the exit, killing the process after
// timeout. It returns the exit status (nil for exit code 0).
func (p *operatorProcess) terminate(timeout time.Duration) error {
	if !p.running() {
		return p.waitErr
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("operator %s did not exit within %s of SIGTERM; killed", p.name, timeout)
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *operatorProcess) kill() {
	if p.running() {
		_ = p.cmd.Process.Kill()
	}
	<-p.exited
}

// logText is the whole log so far.
func (p *operatorProcess) logText() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", p.logPath, err)
	}
	return string(b)
}

// logSize is the log's current length, a mark for logSince.
func (p *operatorProcess) logSize() int64 {
	fi, err := os.Stat(p.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince is the log written after mark.
func (p *operatorProcess) logSince(mark int64) string {
	s := p.logText()
	if int64(len(s)) < mark {
		return s
	}
	return s[mark:]
}

// tail keeps the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// describe says whether the process runs or how it ended.
func (p *operatorProcess) describe() string {
	if p.running() {
		return fmt.Sprintf("operator %s (pid %d, running, log %s)", p.name, p.cmd.Process.Pid, p.logPath)
	}
	return fmt.Sprintf("operator %s (pid %d, exited: %v, log %s)", p.name, p.cmd.Process.Pid, p.waitErr, p.logPath)
}

// dumpLines is how many log lines a failing test prints per process.
const dumpLines = 80

// ownOperator starts an operator process that belongs to t: t's cleanup
// stops it if it still runs, and prints its log's last lines if t failed.
func ownOperator(t *testing.T, name string, extra ...string) *operatorProcess {
	t.Helper()
	return ownOperatorWith(t, name, kubeconfigPath, nil, extra...)
}

// ownOperatorWith is ownOperator with startOperatorWith's kubeconfig and
// environment.
func ownOperatorWith(t *testing.T, name, kubeconfig string, env []string, extra ...string) *operatorProcess {
	t.Helper()
	p, err := startOperatorWith(logDir, nonName.ReplaceAllString(strings.ToLower(t.Name()), "-")+"-"+name, kubeconfig, env, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started %s", p.describe())
	t.Cleanup(func() {
		if p.running() {
			if err := p.terminate(35 * time.Second); err != nil {
				t.Logf("stop %s: %v", p.name, err)
			}
		}
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", p.describe(), tail(p.logText(), dumpLines))
		}
	})
	return p
}

// The shared operator: one process for every test that does not need its
// own. Its logs go to logDir, removed at the end when every test passed.
var shared struct {
	sync.Mutex
	p *operatorProcess
	// starts counts the processes started, to name their logs.
	starts int
}

// startSharedOperator starts the shared operator; it is a no-op while one
// runs.
func startSharedOperator() error {
	shared.Lock()
	defer shared.Unlock()
	if shared.p != nil && shared.p.running() {
		return nil
	}
	shared.starts++
	p, err := startOperator(logDir, fmt.Sprintf("shared-%d", shared.starts))
	if err != nil {
		return err
	}
	shared.p = p
	// Ready once its controller runs (which also means its signal handler
	// is installed: a SIGTERM any earlier would kill it by default action).
	if err := waitForLog(context.Background(), p, 0, logWorkersStarted, time.Minute); err != nil {
		return fmt.Errorf("%w\n%s", err, tail(p.logText(), dumpLines))
	}
	return nil
}

// stopSharedOperator stops the shared operator at the end of the suite.
func stopSharedOperator() error {
	shared.Lock()
	defer shared.Unlock()
	if shared.p == nil {
		return nil
	}
	p := shared.p
	shared.p = nil
	crashed := !p.running()
	err := p.terminate(35 * time.Second)
	switch {
	case crashed:
		return fmt.Errorf("the shared operator had exited before the end of the suite (%v); log %s", p.waitErr, p.logPath)
	case err != nil:
		return fmt.Errorf("stop the shared operator: %w; log %s", err, p.logPath)
	}
	return nil
}

// useSharedOperator makes sure the shared operator runs for t. When t ends
// it checks the process is still alive, and prints what it logged during t
// if t failed.
func useSharedOperator(t *testing.T) {
	t.Helper()
	if err := startSharedOperator(); err != nil {
		t.Fatal(err)
	}
	shared.Lock()
	p := shared.p
	shared.Unlock()
	mark := p.logSize()
	t.Cleanup(func() {
		if !p.running() {
			t.Errorf("the shared operator exited during the test: %s", p.describe())
		}
		if !t.Failed() {
			return
		}
		if during := p.logSince(mark); strings.TrimSpace(during) != "" {
			t.Logf("what %s logged during the test (last %d lines):\n%s", p.describe(), dumpLines, tail(during, dumpLines))
		} else {
			t.Logf("%s logged nothing during the test; its last lines before:\n%s", p.describe(), tail(p.logText(), 20))
		}
	})
}

// pauseSharedOperator stops the shared operator for t, which runs
// operators of its own; t's cleanup starts it again.
func pauseSharedOperator(t *testing.T) {
	t.Helper()
	shared.Lock()
	p := shared.p
	shared.p = nil
	shared.Unlock()
	if p != nil {
		if !p.running() {
			t.Errorf("the shared operator had exited: %s\n%s", p.describe(), tail(p.logText(), dumpLines))
		} else if err := p.terminate(35 * time.Second); err != nil {
			t.Fatalf("stop the shared operator: %v", err)
		}
	}
	t.Cleanup(func() {
		if err := startSharedOperator(); err != nil {
			t.Errorf("restart the shared operator: %v", err)
		}
	})
}

// waitForLog waits until p's log, after mark, contains text.
func waitForLog(ctx context.Context, p *operatorProcess, mark int64, text string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if strings.Contains(p.logSince(mark), text) {
			return nil
		}
		if !p.running() {
			return fmt.Errorf("%s exited before logging %q", p.describe(), text)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not log %q within %s", p.describe(), text, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
