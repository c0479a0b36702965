package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/example/database-operator/reconcile"
	"github.com/example/database-operator/render"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatalf("parseFlags(nil): %v", err)
	}
	want := options{
		MetricsAddr:             ":8080",
		ProbeAddr:               ":8081",
		LogLevel:                "info",
		LogFormat:               "json",
		Render:                  render.DefaultOptions(),
		QPS:                     50,
		Burst:                   100,
		MaxConcurrentReconciles: 4,
	}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", o, want)
	}
}

func TestParseFlagsAll(t *testing.T) {
	o, err := parseFlags([]string{
		"--metrics-bind-address=0",
		"--health-probe-bind-address", "127.0.0.1:9091",
		"--leader-elect",
		"--namespaces", " team-a, ,team-b,",
		"--log-level=debug",
		"--log-format=console",
		"--postgres-exporter-image=registry.example.com/pg-exporter:1",
		"--mysql-exporter-image=registry.example.com/my-exporter:2",
		"--runbook-base-url=https://wiki.example.com/runbooks/database.md",
		"--agent-image=registry.example.com/database-operator:3",
		"--kubeconfig=/tmp/kubeconfig",
		"--kube-api-qps=-1",
		"--kube-api-burst=0",
		"--max-concurrent-reconciles=8",
	})
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	want := options{
		MetricsAddr: "0",
		ProbeAddr:   "127.0.0.1:9091",
		LeaderElect: true,
		Namespaces:  []string{"team-a", "team-b"},
		LogLevel:    "debug",
		LogFormat:   "console",
		Render: render.Options{
			PostgresExporterImage: "registry.example.com/pg-exporter:1",
			MySQLExporterImage:    "registry.example.com/my-exporter:2",
			RunbookBaseURL:        "https://wiki.example.com/runbooks/database.md",
			AgentImage:            "registry.example.com/database-operator:3",
		},
		Kubeconfig:              "/tmp/kubeconfig",
		QPS:                     -1,
		Burst:                   0,
		MaxConcurrentReconciles: 8,
	}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("flags:\n got %+v\nwant %+v", o, want)
	}
}

func TestSplitNamespaces(t *testing.T) {
	for in, want := range map[string][]string{
		"":                  nil,
		" ":                 nil,
		",,":                nil,
		"a":                 {"a"},
		"a,b":               {"a", "b"},
		" a , b ":           {"a", "b"},
		"a,,b,":             {"a", "b"},
		",team-a,\tteam-b,": {"team-a", "team-b"},
	} {
		if got := splitNamespaces(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitNamespaces(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseFlagsRejects(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--log-level=verbose"}, "--log-level"},
		{[]string{"--log-level=INFO"}, "--log-level"},
		{[]string{"--log-level="}, "--log-level"},
		{[]string{"--log-format=text"}, "--log-format"},
		{[]string{"--log-format="}, "--log-format"},
		{[]string{"--namespaces=Team_A"}, "--namespaces"},
		{[]string{"--postgres-exporter-image="}, "--postgres-exporter-image"},
		{[]string{"--mysql-exporter-image="}, "--mysql-exporter-image"},
		{[]string{"--kube-api-qps=0"}, "--kube-api-qps"},
		{[]string{"--kube-api-burst=0"}, "--kube-api-burst"},
		{[]string{"--max-concurrent-reconciles=0"}, "--max-concurrent-reconciles"},
	} {
		_, err := parseFlags(tc.args)
		if err == nil {
			t.Errorf("parseFlags(%q): no error", tc.args)
			continue
		}
		if !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("parseFlags(%q): error %q does not name %s", tc.args, err, tc.flag)
		}
	}
}

func TestParseFlagsRejectsArguments(t *testing.T) {
	if _, err := parseFlags([]string{"extra"}); err == nil {
		t.Error("parseFlags accepted a positional argument")
	}
}

func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		level       string
		info, debug bool
	}{
		{"debug", true, true},
		{"info", true, false},
		{"error", false, false},
	} {
		for _, format := range []string{"json", "console"} {
			log, err := newLogger(options{LogLevel: tc.level, LogFormat: format})
			if err != nil {
				t.Fatalf("newLogger(%s, %s): %v", tc.level, format, err)
			}
			if got := log.Enabled(); got != tc.info {
				t.Errorf("newLogger(%s, %s): info enabled = %v, want %v", tc.level, format, got, tc.info)
			}
			if got := log.V(1).Enabled(); got != tc.debug {
				t.Errorf("newLogger(%s, %s): V(1) enabled = %v, want %v", tc.level, format, got, tc.debug)
			}
		}
	}
}

func TestNewLoggerRejects(t *testing.T) {
	if _, err := newLogger(options{LogLevel: "trace", LogFormat: "json"}); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("bad level: err = %v, want one naming --log-level", err)
	}
	if _, err := newLogger(options{LogLevel: "info", LogFormat: "logfmt"}); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("bad format: err = %v, want one naming --log-format", err)
	}
}

func TestLeaderElectionNamespace(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "namespace")
	if err := os.WriteFile(file, []byte("operators\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(string) string { return v }
	}
	for _, tc := range []struct {
		name, podNamespace, file, want string
	}{
		{"POD_NAMESPACE wins", "from-env", file, "from-env"},
		{"in-cluster file", "", file, "operators"},
		{"out of cluster", "", filepath.Join(dir, "missing"), "default"},
	} {
		if got := leaderElectionNamespace(env(tc.podNamespace), tc.file); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestManagerOptions(t *testing.T) {
	o, err := parseFlags([]string{"--leader-elect", "--namespaces=a,b", "--max-concurrent-reconciles=7", "--metrics-bind-address=0"})
	if err != nil {
		t.Fatal(err)
	}
	scheme, err := newScheme()
	if err != nil {
		t.Fatal(err)
	}
	m := managerOptions(o, scheme, "operators", reconcile.MonitoringAPIs{}, nil)
	if !m.LeaderElection || m.LeaderElectionID != leaderElectionID || m.LeaderElectionNamespace != "operators" || !m.LeaderElectionReleaseOnCancel {
		t.Errorf("leader election: %v %q %q release=%v", m.LeaderElection, m.LeaderElectionID, m.LeaderElectionNamespace, m.LeaderElectionReleaseOnCancel)
	}
	if m.Controller.MaxConcurrentReconciles != 7 {
		t.Errorf("MaxConcurrentReconciles = %d, want 7", m.Controller.MaxConcurrentReconciles)
	}
	if m.Metrics.BindAddress != "0" || m.HealthProbeBindAddress != ":8081" {
		t.Errorf("addresses: metrics %q, probes %q", m.Metrics.BindAddress, m.HealthProbeBindAddress)
	}
	if len(m.Cache.DefaultNamespaces) != 2 {
		t.Errorf("cache namespaces = %v, want a and b", m.Cache.DefaultNamespaces)
	}
	if m.GracefulShutdownTimeout == nil || *m.GracefulShutdownTimeout != gracefulShutdownTimeout {
		t.Errorf("GracefulShutdownTimeout = %v", m.GracefulShutdownTimeout)
	}
}
