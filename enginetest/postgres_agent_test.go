package enginetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/gomega"

	"github.com/example/database-operator/agent"
	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
)

// fakePod is the Kubernetes API as one agent sees it: its pod's role label,
// which the test sets as the operator would, and the reports it writes.
type fakePod struct {
	mu       sync.Mutex
	role     instance.Role
	changed  chan struct{}
	reported instance.Report
	reports  int
}

func newFakePod(role instance.Role) *fakePod {
	return &fakePod{role: role, changed: make(chan struct{})}
}

func (f *fakePod) setRole(r instance.Role) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.role = r
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakePod) pod() agent.Pod {
	return agent.Pod{Role: f.role}
}

func (f *fakePod) Get(context.Context) (agent.Pod, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pod(), nil
}

func (f *fakePod) Watch(ctx context.Context, out chan<- agent.Pod) error {
	for {
		f.mu.Lock()
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		f.mu.Lock()
		p := f.pod()
		f.mu.Unlock()
		select {
		case out <- p:
		case <-ctx.Done():
			return nil
		}
	}
}

func (f *fakePod) Report(_ context.Context, r instance.Report) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reported = r
	f.reports++
	return nil
}

func (f *fakePod) last() instance.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reported
}

// service stands for the read-write Service: a TCP proxy on loopback to
// whichever instance the test names, as kube-proxy forwards to the pod
// labelled primary. Switching drops the connections to the old target, as
// they drop when that pod's server stops; with no target the port refuses
// connections, as kube-proxy rejects them for a Service without endpoints.
type service struct {
	t      testing.TB
	addr   string
	mu     sync.Mutex
	l      net.Listener
	target int
	conns  []net.Conn
}

func newService(t testing.TB) *service {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &service{t: t, addr: addr}
	t.Cleanup(func() { s.switchTo(0) })
	return s
}

func (s *service) port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// switchTo forwards new connections to port (0: to nowhere) and drops the
// existing ones: a network cut, or a target that is gone.
func (s *service) switchTo(port int) { s.route(port, true) }

// retarget forwards new connections to port and keeps the existing ones,
// as kube-proxy does when a Service's endpoints change: connections it
// already forwards keep their conntrack entries.
func (s *service) retarget(port int) { s.route(port, false) }

func (s *service) route(port int, drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.target = port
	if drop {
		for _, c := range s.conns {
			c.Close()
		}
		s.conns = nil
	}
	if port == 0 {
		if s.l != nil {
			s.l.Close()
			s.l = nil
		}
		return
	}
	if s.l == nil {
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			s.t.Errorf("service: %v", err)
			return
		}
		s.l = l
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go s.forward(c)
			}
		}()
	}
}

func (s *service) forward(c net.Conn) {
	s.mu.Lock()
	target := s.target
	s.mu.Unlock()
	if target == 0 {
		c.Close()
		return
	}
	up, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", target), time.Second)
	if err != nil {
		c.Close()
		return
	}
	s.mu.Lock()
	s.conns = append(s.conns, c, up)
	s.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

// agentPod is one PostgreSQL pod whose server the rendered agent command
// runs: the agent package in the test process, with the rendered prepare
// script, the rendered initialisation wrapper and the emulated image
// entrypoint, as the postgres user.
type agentPod struct {
	in     *pgInstance
	api    *fakePod
	cancel context.CancelFunc
	stop   chan os.Signal
	done   chan struct{}
	log    string
}

func startAgentPod(t testing.TB, in *pgInstance, role instance.Role, svc *service) *agentPod {
	t.Helper()
	c := in.r.database(t)
	flags, server, ok := agentCommand(c.Command)
	if !ok {
		t.Fatalf("the database container does not run the agent: %q", c.Command)
	}
	// The image's entrypoint: initialise an empty data directory, then run
	// the server in the foreground with the local overrides.
	bin := mkdir(t, filepath.Join(in.dir, "agent-bin"), in.p.user, 0o755)
	var quoted []string
	for _, a := range in.cfg.serverArgs(in.port)[1:] {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	writeFile(t, filepath.Join(bin, "entrypoint-init.sh"), "#!/bin/bash\nset -- "+strings.Join(quoted, " ")+"\n"+entrypointInit, 0o755)
	writeFile(t, filepath.Join(bin, "docker-entrypoint.sh"), "#!/bin/bash\nset -e\n"+filepath.Join(bin, "entrypoint-init.sh")+
		"\nexec "+filepath.Join(in.p.bin, "postgres")+" "+strings.Join(quoted, " ")+"\n", 0o755)
	env := in.env(t, map[string]string{
		"PATH":         bin + ":" + in.p.path(),
		"HOME":         in.p.user.home,
		"PRIMARY_HOST": "127.0.0.1",
		"PRIMARY_PORT": strconv.Itoa(svc.port()),
		"PGHOST":       in.cfg.socketDir,
		"PGPORT":       strconv.Itoa(in.port),
		// The rendered configuration file, where the test laid it out.
		"POSTGRES_CONFIG_FILE": in.cfg.confFile,
	})
	var envList []string
	for _, k := range sortedKeys(env) {
		envList = append(envList, k+"="+env[k])
	}
	logFile := filepath.Join(in.dir, "agent.log")
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ap := &agentPod{in: in, api: newFakePod(role), stop: make(chan os.Signal, 1), done: make(chan struct{}), log: logFile}
	ctx, cancel := context.WithCancel(context.Background())
	ap.cancel = cancel
	cfg := agent.Config{
		Engine: agent.Postgres{PSQL: filepath.Join(in.p.bin, "psql"), Password: in.secret["root-password"],
			Env:                     []string{"PGHOST=127.0.0.1", "PGPORT=" + strconv.Itoa(in.port)},
			SynchronousStandbyNames: flags["synchronous-standby-names"]},
		Server:  server,
		Prepare: []string{"bash", "-c", flags["prepare"]},
		Env:     envList,
		Output:  out,
		// Its own process group, as a container is its own PID namespace:
		// a lost node takes every process of the pod at once.
		SysProcAttr:  &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: in.p.user.uid, Gid: in.p.user.gid}},
		StopSignal:   syscall.SIGINT,
		StartingFile: filepath.Join(in.dir, "starting"),
		RoleFile:     filepath.Join(in.dir, "role"),
		Upstream:     fmt.Sprintf("127.0.0.1:%d", svc.port()),
		Tick:         200 * time.Millisecond,
		Backoff:      200 * time.Millisecond,
		Log:          slog.New(slog.NewTextHandler(out, nil)).With("pod", in.pod),
	}
	go func() {
		defer close(ap.done)
		defer out.Close()
		agent.Run(ctx, cfg, ap.api, ap.stop)
	}()
	t.Cleanup(ap.kill)
	return ap
}

// kill ends the agent and its server abruptly, as a lost node does.
func (ap *agentPod) kill() {
	ap.killServer()
	ap.cancel()
	<-ap.done
	ap.killServer()
}

// killServer kills the server with SIGKILL: the postmaster and every
// process it started (its process group), as a lost node does. Killing the
// postmaster alone would leave its backends and WAL senders running for a
// moment, still committing and sending WAL.
func (ap *agentPod) killServer() {
	b, err := os.ReadFile(filepath.Join(ap.in.pgdata, "postmaster.pid"))
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0]); err == nil {
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid != syscall.Getpgrp() {
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func (ap *agentPod) logs() string {
	b, _ := os.ReadFile(ap.log)
	return string(b)
}

// reportsEventually waits until the agent reports what match accepts.
func (ap *agentPod) reportsEventually(t testing.TB, timeout time.Duration, what string, match func(instance.Report) bool) instance.Report {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := ap.api.last()
		if match(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no report that %s within %s; last %+v\n--- agent log ---\n%s", ap.in.pod, what, timeout, r, ap.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func servesAsPrimary(r instance.Report) bool { return r.Role == instance.Primary }
func streams(r instance.Report) bool         { return r.Role == instance.Replica && r.Streaming }

// TestPostgresAgentFailoverRewindAndSwitchover runs two pods of a
// PostgreSQL Database under the agent, with the rendered commands: pod 0
// initialises as the primary and pod 1 copies it through the "Service".
// Then pod 1 is cut off, pod 0 takes commits pod 1 never receives (what
// asynchronous replication loses in a failover) and is killed with its
// node; pod 1 is promoted by its role label alone and takes new commits.
// Pod 0 comes back labelled replica: its agent rewinds its data directory
// (the lost commits go, as they must: the new primary's history wins),
// and it streams from pod 1 on the new timeline. Finally a planned
// switchover moves the role back to pod 0 without losing a commit.
func TestPostgresAgentFailoverRewindAndSwitchover(t *testing.T) {
	p := requirePostgres(t)
	g := NewWithT(t)
	s := newSecret("orders", "app")
	r := renderDB(t, newDatabase("orders", databasev1.PostgreSQL, "15", withReplicas(2)))
	svc := newService(t)
	pod0 := newPGInstance(t, p, r, s, "orders-0")
	pod1 := newPGInstance(t, p, r, s, "orders-1")

	a0 := startAgentPod(t, pod0, instance.Primary, svc)
	a0.reportsEventually(t, 2*time.Minute, "serves as primary", servesAsPrimary)
	svc.switchTo(pod0.port)
	pod0.mustApp(t, "CREATE TABLE t (id int PRIMARY KEY, note text)")
	pod0.mustApp(t, "INSERT INTO t SELECT g, 'before' FROM generate_series(1, 100) g")

	a1 := startAgentPod(t, pod1, instance.Replica, svc)
	a1.reportsEventually(t, 2*time.Minute, "streams", streams)
	g.Eventually(func() (string, error) { return pod1.asApp(t, "SELECT count(*) FROM t") }, 20*time.Second, 200*time.Millisecond).Should(Equal("100"))
	g.Expect(a1.logs()).To(ContainSubstring("copied the primary"))

	// Pod 1 loses the primary; pod 0 takes commits only it will ever have.
	svc.switchTo(0)
	cut := a1.reportsEventually(t, 30*time.Second, "is cut off from the primary", func(r instance.Report) bool {
		return r.Role == instance.Replica && !r.Streaming && r.PrimaryUnreachable
	})
	pod0.mustApp(t, "INSERT INTO t SELECT g, 'lost' FROM generate_series(101, 110) g")
	a0.kill()

	// Failover: the operator relabels pod 1, the Service follows.
	a1.api.setRole(instance.Primary)
	promoted := a1.reportsEventually(t, 30*time.Second, "serves as primary", servesAsPrimary)
	g.Expect(promoted.Timeline).To(Equal(cut.Timeline+1), "a promotion starts a new timeline")
	svc.switchTo(pod1.port)
	g.Expect(pod1.mustApp(t, "SELECT count(*) FROM t")).To(Equal("100"), "pod 1 never received the last commits")
	pod1.mustApp(t, "INSERT INTO t SELECT g, 'after' FROM generate_series(201, 250) g")

	// The old primary comes back as a replica: rewound, on the new timeline.
	a0 = startAgentPod(t, pod0, instance.Replica, svc)
	a0.reportsEventually(t, 2*time.Minute, "streams", streams)
	g.Expect(a0.logs()).To(ContainSubstring("was a primary's; rewinding it"))
	if strings.Contains(a0.logs(), "copying the primary again") {
		t.Fatalf("pg_rewind failed and the old primary was copied again:\n%s", a0.logs())
	}
	g.Eventually(func() (string, error) {
		return pod0.asApp(t, "SELECT note, count(*) FROM t GROUP BY note ORDER BY note")
	}, 20*time.Second, 200*time.Millisecond).Should(Equal("after|50\nbefore|100"), "the new primary's history, without the lost commits")
	g.Expect(a0.api.last().Timeline).To(Equal(promoted.Timeline))
	_, err := pod0.asApp(t, "INSERT INTO t VALUES (999, 'split brain')")
	g.Expect(err).To(HaveOccurred(), "the old primary must not accept writes")

	// Planned switchover back to pod 0: demote pod 1 first; it stops
	// cleanly, which sends pod 0 all it wrote; then promote pod 0.
	pod1.mustApp(t, "INSERT INTO t SELECT g, 'switchover' FROM generate_series(301, 320) g")
	a1.api.setRole(instance.Replica)
	svc.retarget(0)
	a1.reportsEventually(t, 30*time.Second, "no longer serves as primary", func(r instance.Report) bool { return r.Role != instance.Primary })
	a0.api.setRole(instance.Primary)
	a0.reportsEventually(t, 30*time.Second, "serves as primary", servesAsPrimary)
	svc.retarget(pod0.port)
	g.Expect(pod0.mustApp(t, "SELECT count(*) FROM t WHERE note = 'switchover'")).To(Equal("20"), "a switchover loses no commit")
	a1.reportsEventually(t, 2*time.Minute, "streams from the new primary", streams)
	pod0.mustApp(t, "INSERT INTO t VALUES (400, 'back')")
	g.Eventually(func() (string, error) { return pod1.asApp(t, "SELECT count(*) FROM t") }, 20*time.Second, 200*time.Millisecond).Should(Equal("171"))

	// An abandoned switchover: pod 0 is demoted, and nobody is promoted (the
	// target could not take over). Its prepare script waits for a primary;
	// given the role back, it must stop waiting and serve again, with every
	// row, rather than wait for itself.
	a0.api.setRole(instance.Replica)
	svc.retarget(0)
	g.Eventually(a0.logs, 30*time.Second, 200*time.Millisecond).Should(ContainSubstring("waiting for the primary"))
	a0.api.setRole(instance.Primary)
	a0.reportsEventually(t, 30*time.Second, "serves as primary again", servesAsPrimary)
	g.Expect(a0.logs()).To(ContainSubstring("no longer waiting for a primary"))
	svc.retarget(pod0.port)
	g.Expect(pod0.mustApp(t, "SELECT count(*) FROM t")).To(Equal("171"), "the old primary kept every row")
	pod0.mustApp(t, "INSERT INTO t VALUES (401, 'handed back')")
	a1.reportsEventually(t, 2*time.Minute, "streams from the old primary again", streams)
	g.Eventually(func() (string, error) { return pod1.asApp(t, "SELECT count(*) FROM t") }, 20*time.Second, 200*time.Millisecond).Should(Equal("172"))
}

// TestPostgresAgentSyncModeLosesNoAcknowledgedCommit runs three pods in
// sync mode under the agent while a client commits one row after another
// through the "Service", and kills the primary with its node twenty times
// at random moments. Each time the test does what the operator does: it
// waits until the replicas' streams have ended (their positions are
// final), promotes the most advanced one by its label, and the killed pod
// comes back as a replica (rewound). Every commit the client saw
// acknowledged must be on the last primary.
func TestPostgresAgentSyncModeLosesNoAcknowledgedCommit(t *testing.T) {
	p := requirePostgres(t)
	g := NewWithT(t)
	s := newSecret("orders", "app")
	r := renderDB(t, newDatabase("orders", databasev1.PostgreSQL, "15", withReplicas(3), withReplicationMode(databasev1.ReplicationSync)))
	svc := newService(t)
	var pods []*pgInstance
	for i := range 3 {
		pods = append(pods, newPGInstance(t, p, r, s, fmt.Sprintf("orders-%d", i)))
	}
	agents := make([]*agentPod, 3)
	agents[0] = startAgentPod(t, pods[0], instance.Primary, svc)
	agents[0].reportsEventually(t, 2*time.Minute, "serves as primary", servesAsPrimary)
	svc.switchTo(pods[0].port)
	for i := 1; i < 3; i++ {
		agents[i] = startAgentPod(t, pods[i], instance.Replica, svc)
		agents[i].reportsEventually(t, 2*time.Minute, "streams", streams)
	}
	// In sync mode a commit waits for a standby: the table only now.
	pods[0].mustApp(t, "CREATE TABLE acked (id int PRIMARY KEY)")
	g.Eventually(func() (string, error) {
		return pods[0].asSuperuser(t, "SELECT current_setting('synchronous_standby_names')")
	}, 10*time.Second, 200*time.Millisecond).Should(Equal("ANY 1 (*)"), "the agent switched sync mode on")

	cw := startCommitter(t, svc.port(), s)
	primary := 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 14))
	for kill := 1; kill <= 20; kill++ {
		for i, a := range agents {
			if i != primary {
				a.reportsEventually(t, 2*time.Minute, "streams", streams)
			}
		}
		cw.waitMore(t, 5)
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		agents[primary].kill()
		svc.switchTo(0)

		// The operator's choice: final positions, the most advanced wins.
		best, bestLSN := -1, instance.LSN(0)
		for i, a := range agents {
			if i == primary {
				continue
			}
			rep := a.reportsEventually(t, 30*time.Second, "has stopped streaming", func(r instance.Report) bool {
				return r.Role == instance.Replica && !r.Streaming
			})
			lsn, err := instance.ParseLSN(rep.Position)
			g.Expect(err).NotTo(HaveOccurred())
			if best < 0 || lsn > bestLSN {
				best, bestLSN = i, lsn
			}
		}
		agents[best].api.setRole(instance.Primary)
		agents[best].reportsEventually(t, 30*time.Second, "serves as primary", servesAsPrimary)
		svc.switchTo(pods[best].port)
		old := primary
		primary = best
		agents[old] = startAgentPod(t, pods[old], instance.Replica, svc)
		t.Logf("kill %d: %s promoted at %s; %d commits acknowledged so far", kill, pods[best].pod, bestLSN, cw.count())
	}
	cw.waitMore(t, 5)
	acked := cw.stop()
	out := pods[primary].mustApp(t, "SELECT string_agg(id::text, ',') FROM acked")
	have := map[string]bool{}
	for _, id := range strings.Split(out, ",") {
		have[id] = true
	}
	var lost []int
	for _, id := range acked {
		if !have[strconv.Itoa(id)] {
			lost = append(lost, id)
		}
	}
	t.Logf("measured: sync mode, 20 kills of the primary with its node: %d commits acknowledged, %d lost", len(acked), len(lost))
	g.Expect(lost).To(BeEmpty(), "acknowledged commits missing from the last primary")
	g.Expect(len(acked)).To(BeNumerically(">", 100))
}

// committer commits one row after another through the Service's port,
// reconnecting after every failure, and remembers which commits were
// acknowledged.
type committer struct {
	mu     sync.Mutex
	acked  []int
	cancel context.CancelFunc
	done   chan struct{}
}

func startCommitter(t testing.TB, port int, s secret) *committer {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s sslmode=disable connect_timeout=2", port, s["database"]))
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Password = s["username"], s["password"]
	ctx, cancel := context.WithCancel(context.Background())
	c := &committer{cancel: cancel, done: make(chan struct{})}
	t.Cleanup(func() { c.stop() })
	go func() {
		defer close(c.done)
		var conn *pgx.Conn
		for id := 1; ctx.Err() == nil; id++ {
			if conn == nil {
				cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
				conn, err = pgx.ConnectConfig(cctx, cfg)
				ccancel()
				if err != nil {
					conn = nil
					time.Sleep(50 * time.Millisecond)
					continue
				}
			}
			ectx, ecancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := conn.Exec(ectx, "INSERT INTO acked VALUES ($1)", id)
			ecancel()
			if err != nil {
				conn.Close(context.Background())
				conn = nil
				continue
			}
			c.mu.Lock()
			c.acked = append(c.acked, id)
			c.mu.Unlock()
		}
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	return c
}

func (c *committer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.acked)
}

// waitMore waits until n more commits are acknowledged.
func (c *committer) waitMore(t testing.TB, n int) {
	t.Helper()
	want := c.count() + n
	deadline := time.Now().Add(time.Minute)
	for c.count() < want {
		if time.Now().After(deadline) {
			t.Fatalf("no %d more acknowledged commits within a minute (%d so far)", n, c.count())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the client and returns the acknowledged commits.
func (c *committer) stop() []int {
	c.cancel()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.acked...)
}
