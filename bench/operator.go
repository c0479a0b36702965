package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// operatorProc is the operator binary running as a child process of the
// bench, so its memory is its own.
type operatorProc struct {
	cmd        *exec.Cmd
	metricsURL string
	readyURL   string
	done       chan struct{}
	waitErr    error

	mu sync.Mutex
	// liveHeap is the heap marked live by the last GC (GODEBUG=gctrace=1),
	// in bytes; gcs counts the GCs seen.
	liveHeap uint64
	gcs      int
}

// operatorFlags are the operator's command-line settings the bench varies.
type operatorFlags struct {
	QPS     float64
	Burst   int
	Workers int
}

// freePort returns a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// gcLine matches gctrace's "A->B->C MB": heap at GC start, at GC end,
// and marked live.
var gcLine = regexp.MustCompile(`^gc \d+ .* (\d+)->(\d+)->(\d+) MB`)

// startOperator runs bin against kubeconfig with the given flags, logs to
// logPath, and waits until /readyz answers (its caches have synced).
func startOperator(ctx context.Context, bin, kubeconfig, logPath string, f operatorFlags) (*operatorProc, error) {
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin,
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", mport),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", pport),
		"--kube-api-qps", strconv.FormatFloat(f.QPS, 'f', -1, 64),
		"--kube-api-burst", strconv.Itoa(f.Burst),
		"--max-concurrent-reconciles", strconv.Itoa(f.Workers),
		"--log-format", "json",
		"--log-level", "info",
	)
	// Only the environment the operator needs: no KUBECONFIG from the
	// caller's shell, and gctrace for the live heap after each GC.
	cmd.Env = []string{"HOME=" + os.Getenv("HOME"), "PATH=" + os.Getenv("PATH"), "GODEBUG=gctrace=1"}
	cmd.Stdout = logFile
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &operatorProc{
		cmd:        cmd,
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", mport),
		readyURL:   fmt.Sprintf("http://127.0.0.1:%d/readyz", pport),
		done:       make(chan struct{}),
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		p.scanStderr(stderr, logFile)
	}()
	go func() {
		<-copied
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.readyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("the operator exited before it was ready: %v (log: %s)", p.waitErr, logPath)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("the operator was not ready within 60s (log: %s)", logPath)
		}
	}
}

// scanStderr copies the operator's stderr (its log and the gctrace
// lines) to w and keeps the live heap of the last GC.
func (p *operatorProc) scanStderr(r io.Reader, w io.Writer) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		line := s.Text()
		fmt.Fprintln(w, line)
		if m := gcLine.FindStringSubmatch(line); m != nil {
			live, _ := strconv.ParseUint(m[3], 10, 64)
			p.mu.Lock()
			p.liveHeap = live << 20
			p.gcs++
			p.mu.Unlock()
		}
	}
	_, _ = io.Copy(w, r)
}

// stop sends SIGTERM and waits for the process (it finishes running
// reconciles, at most 30 s), then kills it.
func (p *operatorProc) stop() error {
	select {
	case <-p.done:
		return p.waitErr
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(45 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("the operator did not stop within 45s of SIGTERM; killed")
	}
	return p.waitErr
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics scrapes /metrics (the Prometheus text format; the bench parses
// the few lines it needs itself).
func (p *operatorProc) metrics() ([]sample, error) {
	resp, err := http.Get(p.metricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", p.metricsURL, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return parseMetrics(string(b)), nil
}

// parseMetrics reads "name{k="v",...} value" lines; comments and lines it
// cannot read are skipped.
func parseMetrics(text string) []sample {
	var out []sample
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(rest, "{ "); i >= 0 && rest[i] == '{' {
			s.name = rest[:i]
			j := strings.LastIndex(rest, "}")
			if j < i {
				continue
			}
			for _, kv := range splitLabels(rest[i+1 : j]) {
				k, v, ok := strings.Cut(kv, "=")
				if ok {
					if u, err := strconv.Unquote(v); err == nil {
						v = u
					}
					s.labels[k] = v
				}
			}
			rest = rest[j+1:]
		} else if i >= 0 {
			s.name, rest = rest[:i], rest[i:]
		} else {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// splitLabels splits k="v",k2="v2" at the commas outside quotes.
func splitLabels(s string) []string {
	var out []string
	inQuote, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// metricValue sums the samples of a metric whose labels match.
func metricValue(samples []sample, name string, labels map[string]string) float64 {
	var sum float64
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for k, v := range labels {
			if s.labels[k] != v {
				continue next
			}
		}
		sum += s.value
	}
	return sum
}

// reconciles is the operator's count of finished reconciles.
func (p *operatorProc) reconciles() (float64, error) {
	fams, err := p.metrics()
	if err != nil {
		return 0, err
	}
	return metricValue(fams, "controller_runtime_reconcile_total", map[string]string{"controller": "database"}), nil
}

// waitIdle waits until the controller's queue is empty and no worker is
// busy, seen twice in a row half a second apart.
func (p *operatorProc) waitIdle(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	idle := 0
	for idle < 2 {
		fams, err := p.metrics()
		if err != nil {
			return err
		}
		depth := metricValue(fams, "workqueue_depth", map[string]string{"name": "database"})
		active := metricValue(fams, "controller_runtime_active_workers", map[string]string{"controller": "database"})
		if depth == 0 && active == 0 {
			idle++
		} else {
			idle = 0
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the operator was still busy after %s (queue %v, active workers %v)", timeout, depth, active)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}

// MemoryPoint is the operator's memory with N Databases in place.
type MemoryPoint struct {
	N int
	// RSS is VmRSS of the operator process.
	RSS uint64
	// HeapInuse is go_memstats_heap_inuse_bytes from /metrics.
	HeapInuse uint64
	// LiveHeap is the heap marked live by the operator's last GC
	// (gctrace), the closest to "heap after GC" from outside the process.
	LiveHeap uint64
	// GCs is how many GCs the operator had run.
	GCs int
}

// memory samples the operator's memory.
func (p *operatorProc) memory(n int) (MemoryPoint, error) {
	mp := MemoryPoint{N: n}
	rss, err := vmRSS(p.cmd.Process.Pid)
	if err != nil {
		return mp, err
	}
	mp.RSS = rss
	fams, err := p.metrics()
	if err != nil {
		return mp, err
	}
	mp.HeapInuse = uint64(metricValue(fams, "go_memstats_heap_inuse_bytes", nil))
	p.mu.Lock()
	mp.LiveHeap, mp.GCs = p.liveHeap, p.gcs
	p.mu.Unlock()
	return mp, nil
}

// vmRSS reads VmRSS of a process from /proc, in bytes.
func vmRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) >= 1 {
				kb, err := strconv.ParseUint(fields[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
