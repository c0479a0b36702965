// Package agent is the process that runs each database server: PID 1 of
// the database container. It starts the server in the role the operator
// gives the pod (the instance.LabelRole label), promotes or demotes it when
// that label changes, restarts it when it crashes, and reports what the
// server is doing in the pod's instance.AnnotationReport annotation, which
// the operator watches. Decisions about the Database as a whole (which pod
// is the primary) are the operator's; the agent only makes its server
// match.
package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/example/database-operator/instance"
)

// PodAPI is the agent's view of the Kubernetes API: its own pod.
type PodAPI interface {
	// Get reads the pod.
	Get(ctx context.Context) (Pod, error)
	// Watch sends the pod as it is now, then every later version, to out
	// until the watch ends or ctx is done.
	Watch(ctx context.Context, out chan<- Pod) error
	// Report publishes the report on the pod.
	Report(ctx context.Context, r instance.Report) error
}

// Pod is what the agent reads of its pod.
type Pod struct {
	// Role is the role the operator asks of the pod; empty until it has.
	Role instance.Role
	// Deleting: the pod has a deletion timestamp.
	Deleting bool
}

// Config says how to run one database server.
type Config struct {
	// Engine observes and promotes the server.
	Engine Engine
	// Server is the server's command line (the image's entrypoint through
	// the initialisation wrapper).
	Server []string
	// Prepare runs before every start of the server with ROLE set to the
	// role it starts in: it makes a replica's data directory a copy of the
	// primary (a clone, or a rewind of a former primary) and points it at
	// the primary. A failure is retried.
	Prepare []string
	// Env is added to the environment of the server and the prepare
	// script, after the agent's own.
	Env []string
	// Output receives the server's and the prepare script's output; the
	// agent's own when nil.
	Output io.Writer
	// SysProcAttr starts the server and the prepare script with these
	// attributes (tests run them as the database user).
	SysProcAttr *syscall.SysProcAttr
	// StopSignal stops the server cleanly (the image's STOPSIGNAL).
	StopSignal syscall.Signal
	// StartingFile exists while the agent prepares or starts the server,
	// until it first answers: the probes pass while it does, so a long
	// copy or rewind is not killed for not serving.
	StartingFile string
	// TerminationLog is the file the server's scripts write why they
	// failed to (the container's termination message file). The agent
	// restarts a failed server in place, so the container never
	// terminates and the kubelet never reads it: the agent does, after a
	// failure, and reports it until the server answers. Empty: none.
	TerminationLog string
	// RoleFile is where the agent keeps the role the operator gives the
	// pod, rewritten on every change, and its path is ROLE_FILE in the
	// prepare script's environment: a replica's prepare script that waits
	// for a primary reads it, and ends with PrepareRoleChanged once the
	// role is another, so that the agent prepares for the new one. Without
	// it a pod given the primary role while it waits for a primary would
	// wait for itself. Empty: none.
	RoleFile string
	// Upstream is the primary's address (host:port) a replica streams from;
	// a replica that is not streaming dials it to tell a lost primary from
	// a slow one (instance.Report.PrimaryUnreachable).
	Upstream string
	// DataVolume is the data volume's mount point, whose size and free
	// space every report carries; empty: none.
	DataVolume string
	// IsolationTimeout: a primary that has had a streaming replica, then
	// has none and cannot read its pod from the API server either, for
	// this long, stops its server (it starts again once the API answers,
	// in the role its label gives). 0: it never does.
	IsolationTimeout time.Duration
	// Tick is how often the server is observed (1 s when zero).
	Tick time.Duration
	// Backoff is the pause after a failed prepare or a crash (1 s when
	// zero); it doubles on each failure in a row up to 16 times.
	Backoff time.Duration
	Log     *slog.Logger
}

// PrepareRoleChanged is the prepare script's exit status when it stopped
// waiting because the pod's role changed (EX_TEMPFAIL): not a failure, and
// the agent prepares again at once for the new role.
const PrepareRoleChanged = 75

// Run runs the server until ctx is done or the server stops after a stop
// signal; it returns the server's exit status.
func Run(ctx context.Context, cfg Config, api PodAPI, stop <-chan os.Signal) (int, error) {
	a := &runner{cfg: cfg, api: api, procs: sharedProcesses()}
	if a.cfg.Tick == 0 {
		a.cfg.Tick = time.Second
	}
	if a.cfg.Backoff == 0 {
		a.cfg.Backoff = time.Second
	}
	if a.cfg.Log == nil {
		a.cfg.Log = slog.Default()
	}
	return a.run(ctx, stop)
}

type runner struct {
	cfg   Config
	api   PodAPI
	procs *processes

	phase   phase
	pid     int
	exits   <-chan exit
	desired instance.Role
	// preparingAs is the role the running prepare script prepares for.
	preparingAs instance.Role
	deleting    bool
	stopping    bool

	failures     int
	backoffUntil time.Time
	// lastFailure is what the last failed prepare or server wrote to
	// TerminationLog; cleared once the server answers.
	lastFailure string
	answered    bool // the server answered since it was started
	// configured: ConfigurePrimary succeeded since the server last started
	// or was promoted.
	configured bool

	// iso tracks whether the primary is cut off (IsolationTimeout).
	iso isolation

	written   instance.Report
	writtenAt time.Time
	// reports takes the next report to write; the writer goroutine says
	// on reportFailed that one failed, so that it is written again.
	reports      chan instance.Report
	reportFailed chan struct{}
}

func (a *runner) run(ctx context.Context, stop <-chan os.Signal) (int, error) {
	pods := make(chan Pod, 1)
	watchCtx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	go a.watchPod(watchCtx, pods)
	// Reports are written by their own goroutine: an API server that does
	// not answer must not hold up the loop that runs the server (the
	// isolation fence acts while it does not).
	a.reports, a.reportFailed = make(chan instance.Report, 1), make(chan struct{}, 1)
	go a.writeReports(watchCtx)

	ticker := time.NewTicker(a.cfg.Tick)
	defer ticker.Stop()
	var current *instance.Report
	for {
		select {
		case <-ctx.Done():
			a.terminate()
			return 1, ctx.Err()
		case sig := <-stop:
			a.cfg.Log.Info("stopping", "signal", sig.String(), "phase", a.phase.String())
			a.stopping = true
			a.terminate()
			if a.phase == idle {
				return 0, nil
			}
		case p := <-pods:
			a.observePod(p)
			// A new role is acted on at once, on what the server said
			// last: a promotion must not wait for another look.
			if current != nil && a.phase == running {
				a.act(ctx, current)
				current = nil // acted on: only a new look acts again
			}
		case e := <-a.exits:
			if done, status := a.exited(e); done {
				return status, nil
			}
		case <-ticker.C:
		}
		current = a.observeServer(ctx)
		a.watchIsolation(ctx, current)
		a.act(ctx, current)
		a.publish(current)
	}
}

// watchPod follows the pod's labels: a GET, then a watch that starts from
// the pod's current state, again after every error or end. Not a watch
// from the GET's resourceVersion: that is the pod's last change, which
// leaves the API server's watch cache while the pod stays unchanged, and
// every watch from it then fails with 410 Expired (seen on real pods: an
// agent blind to its role for 20 minutes).
func (a *runner) watchPod(ctx context.Context, out chan<- Pod) {
	for ctx.Err() == nil {
		p, err := a.api.Get(ctx)
		if err == nil {
			select {
			case out <- p:
			case <-ctx.Done():
				return
			}
			err = a.api.Watch(ctx, out)
		}
		if err != nil && ctx.Err() == nil {
			a.cfg.Log.Error("reading the pod from the API", "err", err)
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
}

func (a *runner) observePod(p Pod) {
	if role := p.Role; role != a.desired {
		a.cfg.Log.Info("role assigned", "role", string(role), "was", string(a.desired))
		a.desired = role
		a.writeRoleFile()
	}
	a.deleting = p.Deleting
}

func (a *runner) observeServer(ctx context.Context) *instance.Report {
	if a.phase != running {
		return nil
	}
	r, err := a.cfg.Engine.Observe(ctx)
	if err != nil {
		if a.answered {
			a.cfg.Log.Info("server does not answer", "err", err)
		}
		return nil
	}
	if !a.answered {
		a.answered = true
		a.failures = 0
		a.lastFailure = ""
		a.removeStartingFile()
		a.cfg.Log.Info("server answers", "role", string(r.Role))
	}
	// Only a server the operator made the primary is configured as one: a
	// MySQL former primary starts read-only with no replication, which
	// looks like a primary, and configuring it would lift its fence.
	if r.Role == instance.Primary && a.desired == instance.Primary && !a.configured {
		if err := a.cfg.Engine.ConfigurePrimary(ctx); err != nil {
			a.cfg.Log.Error("configuring the primary", "err", err)
		} else {
			a.configured = true
		}
	}
	if ar, ok := a.cfg.Engine.(Archiver); ok && r.Role == instance.Primary && a.desired == instance.Primary && a.configured {
		r.Archive = ar.Archive()
	}
	if r.Role == instance.Replica && !r.Streaming && a.cfg.Upstream != "" {
		r.PrimaryUnreachable = !reachable(ctx, a.cfg.Upstream)
	}
	return &r
}

// reachable says a TCP connection to address opens within 300 ms: the
// pods share a cluster network, where a live server accepts in well under
// a millisecond, and the agent's loop waits meanwhile.
func reachable(ctx context.Context, address string) bool {
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", address)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func (a *runner) act(ctx context.Context, server *instance.Report) {
	s := situation{
		desired:     a.desired,
		terminating: a.stopping || a.deleting,
		phase:       a.phase,
		backingOff:  time.Now().Before(a.backoffUntil),
		server:      server,
	}
	switch decide(s) {
	case prepare:
		a.prepare(ctx)
	case promote:
		a.cfg.Log.Info("promoting the server to primary")
		if err := a.cfg.Engine.Promote(ctx); err != nil {
			a.cfg.Log.Error("promotion failed", "err", err)
			return
		}
		a.cfg.Log.Info("promoted")
		a.configured = false
		a.iso = isolation{}
	case demote:
		a.cfg.Log.Info("demoting: stopping the primary, to start again as a replica")
		a.signalServer(a.cfg.StopSignal)
		a.phase = stopping
	}
}

// prepare confirms the role with a fresh read (a watch may lag behind a
// relabelling the agent must not miss) and runs the prepare script.
func (a *runner) prepare(ctx context.Context) {
	p, err := a.api.Get(ctx)
	if err != nil {
		a.cfg.Log.Error("not starting: cannot confirm the pod's role", "err", err)
		// Retried at the first pause, not a growing one: the API server
		// away (a partition healing, a restart) says nothing about the
		// server, which should start as soon as it answers again.
		a.backoffUntil = time.Now().Add(a.cfg.Backoff)
		return
	}
	a.observePod(p)
	if a.desired == "" || a.deleting {
		return
	}
	a.touchStartingFile()
	a.cfg.Log.Info("preparing the data directory", "role", string(a.desired))
	pid, exits, err := a.procs.start(a.cfg.Prepare, a.childEnv(), a.cfg.Output, a.cfg.SysProcAttr)
	if err != nil {
		a.cfg.Log.Error("prepare", "err", err)
		a.backOff()
		return
	}
	a.phase, a.pid, a.exits, a.preparingAs = preparing, pid, exits, a.desired
}

// exited handles the end of the prepare script or the server; done when
// the agent itself should exit with status.
func (a *runner) exited(e exit) (done bool, status int) {
	was := a.phase
	a.phase, a.pid, a.exits = idle, 0, nil
	switch {
	case a.stopping:
		a.cfg.Log.Info("stopped", "process", was.String(), "how", e.String())
		return true, e.status.ExitStatus()
	case was == preparing && e.status.Exited() && e.status.ExitStatus() == 0:
		a.start()
	case was == preparing && e.status.Exited() && e.status.ExitStatus() == PrepareRoleChanged:
		a.cfg.Log.Info("prepare stopped waiting: the role changed", "role", string(a.desired))
	case was == preparing:
		a.cfg.Log.Error("prepare failed; retrying", "how", e.String())
		a.readTerminationLog()
		a.backOff()
	case was == stopping:
		a.cfg.Log.Info("server stopped", "how", e.String())
	default:
		a.cfg.Log.Error("server ended; starting it again", "how", e.String())
		a.readTerminationLog()
		a.backOff()
	}
	return false, 0
}

func (a *runner) start() {
	a.cfg.Log.Info("starting the server", "role", string(a.desired))
	pid, exits, err := a.procs.start(a.cfg.Server, a.childEnv(), a.cfg.Output, a.cfg.SysProcAttr)
	if err != nil {
		a.cfg.Log.Error("starting the server", "err", err)
		a.backOff()
		return
	}
	a.phase, a.pid, a.exits, a.answered, a.configured = running, pid, exits, false, false
	a.iso = isolation{}
}

// childEnv is what the agent adds to its environment for its children.
func (a *runner) childEnv() []string {
	env := append(append([]string{}, a.cfg.Env...), "ROLE="+string(a.desired))
	if a.cfg.RoleFile != "" {
		env = append(env, "ROLE_FILE="+a.cfg.RoleFile)
	}
	return env
}

// writeRoleFile replaces RoleFile's content with the desired role, by a
// rename, so that a script never reads half a word.
func (a *runner) writeRoleFile() {
	if a.cfg.RoleFile == "" {
		return
	}
	tmp := a.cfg.RoleFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(a.desired), 0o644); err != nil {
		a.cfg.Log.Error("writing the role file", "err", err)
		return
	}
	if err := os.Rename(tmp, a.cfg.RoleFile); err != nil {
		a.cfg.Log.Error("writing the role file", "err", err)
	}
}

func (a *runner) backOff() {
	d := a.cfg.Backoff << min(a.failures, 4)
	a.failures++
	a.backoffUntil = time.Now().Add(d)
}

// terminate asks whatever runs to stop: the server cleanly, the prepare
// script with SIGTERM.
func (a *runner) terminate() {
	switch a.phase {
	case running:
		a.signalServer(a.cfg.StopSignal)
		a.phase = stopping
	case preparing:
		a.signalServer(syscall.SIGTERM)
	}
}

func (a *runner) signalServer(sig syscall.Signal) {
	if a.pid == 0 {
		return
	}
	if err := syscall.Kill(a.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		a.cfg.Log.Error("signalling the server", "signal", sig.String(), "err", err)
	}
}

// publish writes the report when it says something new, and while only
// the positions move at most every instance.PositionInterval.
func (a *runner) publish(server *instance.Report) {
	select {
	case <-a.reportFailed:
		a.written = instance.Report{}
	default:
	}
	r := instance.Report{}
	if server != nil {
		r = *server
	} else {
		r.Message = a.describe()
	}
	r.Stopping = a.phase == stopping
	r.ObservedAt = time.Now().UTC()
	if a.cfg.DataVolume != "" {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(a.cfg.DataVolume, &fs); err == nil {
			r.VolumeBytes, r.VolumeFreeBytes = int64(fs.Blocks)*fs.Bsize, int64(fs.Bavail)*fs.Bsize
		}
	}
	same := r.SameExceptPositions(a.written)
	if same && (r.SamePositions(a.written) || time.Since(a.writtenAt) < instance.PositionInterval) {
		return
	}
	// The newest report replaces one still waiting to be written.
	select {
	case <-a.reports:
	default:
	}
	a.reports <- r
	a.written, a.writtenAt = r, time.Now()
}

// writeReports writes each report publish hands over, until ctx ends.
func (a *runner) writeReports(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-a.reports:
			if err := a.api.Report(ctx, r); err != nil {
				a.cfg.Log.Error("reporting", "err", err)
				select {
				case a.reportFailed <- struct{}{}:
				default:
				}
			}
		}
	}
}

// watchIsolation follows a primary's replicas and, once they are all
// gone, whether the API server answers; when neither has for
// IsolationTimeout, it stops the server: the operator, which the partition
// hides from it, may be promoting a replica on the other side, and two
// primaries taking writes would lose one side's.
func (a *runner) watchIsolation(ctx context.Context, r *instance.Report) {
	if a.cfg.IsolationTimeout == 0 || r == nil || r.Role != instance.Primary || a.desired != instance.Primary {
		return
	}
	now := time.Now()
	if r.StreamingReplicas > 0 {
		a.iso = isolation{hadReplica: true}
		return
	}
	if !a.iso.hadReplica {
		return
	}
	if a.iso.replicasLostAt.IsZero() {
		a.iso.replicasLostAt = now
		a.cfg.Log.Info("no replica streams from the primary any more; checking that the API server answers")
	}
	if !a.iso.probing(now) {
		return
	}
	probe, cancel := context.WithTimeout(ctx, time.Second)
	p, err := a.api.Get(probe)
	cancel()
	if err == nil {
		a.iso.apiFailingSince = time.Time{}
		a.observePod(p)
		return
	}
	if a.iso.apiFailingSince.IsZero() {
		a.iso.apiFailingSince = now
	}
	if a.iso.fenceDue(now, a.cfg.IsolationTimeout) {
		a.cfg.Log.Error("isolated: no replica streams from this primary and the API server does not answer; stopping the server (fencing) until it does",
			"replicasLostFor", now.Sub(a.iso.replicasLostAt).Round(time.Millisecond).String(),
			"apiFailingFor", now.Sub(a.iso.apiFailingSince).Round(time.Millisecond).String(), "err", err)
		a.iso = isolation{}
		a.signalServer(a.cfg.StopSignal)
		a.phase = stopping
	}
}

func (a *runner) describe() string {
	switch a.phase {
	case idle:
		if a.desired == "" {
			return "waiting for the operator to assign a role"
		}
		if time.Now().Before(a.backoffUntil) {
			if a.lastFailure != "" {
				return fmt.Sprintf("retrying after failure %d: %s", a.failures, a.lastFailure)
			}
			return fmt.Sprintf("retrying after failure %d", a.failures)
		}
		return "starting"
	case preparing:
		return "preparing the data directory as " + string(a.preparingAs)
	case stopping:
		return "stopping the server"
	default:
		return "server not answering"
	}
}

// readTerminationLog takes what a failed start wrote to the termination
// log, and empties the file, so that a later failure is not reported with
// this one's reason. At most 1 KiB is kept.
func (a *runner) readTerminationLog() {
	if a.cfg.TerminationLog == "" {
		return
	}
	b, err := os.ReadFile(a.cfg.TerminationLog)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return
	}
	a.lastFailure = strings.TrimSpace(string(b[:min(len(b), 1024)]))
	if err := os.Truncate(a.cfg.TerminationLog, 0); err != nil {
		a.cfg.Log.Error("emptying the termination log", "err", err)
	}
}

func (a *runner) touchStartingFile() {
	if a.cfg.StartingFile == "" {
		return
	}
	if err := os.WriteFile(a.cfg.StartingFile, nil, 0o644); err != nil {
		a.cfg.Log.Error("writing the starting marker", "err", err)
	}
}

func (a *runner) removeStartingFile() {
	if a.cfg.StartingFile == "" {
		return
	}
	if err := os.Remove(a.cfg.StartingFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.cfg.Log.Error("removing the starting marker", "err", err)
	}
}
