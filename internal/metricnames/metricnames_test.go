package metricnames_test

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/internal/metricnames"
)

func TestReferenced(t *testing.T) {
	for _, tc := range []struct {
		name, expr string
		want       []string
	}{
		{"bare name", `up`, []string{"up"}},
		{"matchers and strings are skipped", `pg_up{namespace="shop",service=~"orders-(headless|x)",pod!="a{b}"} == 0`, []string{"pg_up"}},
		{"aggregation with by before the body", `max by (namespace, pod) (mysql_up{a="b"})`, []string{"mysql_up"}},
		{"aggregation with by after the body", `sum(pg_stat_database_numbackends) by (pod, datname)`, []string{"pg_stat_database_numbackends"}},
		{"functions, ranges and durations", `rate(pg_stat_database_xact_commit[5m]) offset 1h30m + increase(x_total[$__rate_interval])`,
			[]string{"pg_stat_database_xact_commit", "x_total"}},
		{"set operators, on and group_left", `a / on (pod) group_left (node) b unless ignoring (x) c or d and bool e`,
			[]string{"a", "b", "c", "d", "e"}},
		{"numbers are not names", `time() - kube_cronjob_created > 172800 or vector(0) < 1e3 * 0x10 + .5`,
			[]string{"kube_cronjob_created"}},
		{"each name once, in order", `b + a + b`, []string{"b", "a"}},
		{"subquery and nested brackets", `max_over_time(rate(a[5m])[1h:1m])`, []string{"a"}},
		{"grafana variable in a string", `up{namespace="$namespace", service="$database-headless"}`, []string{"up"}},
		{"recording-rule style names with colons", `job:up:sum`, []string{"job:up:sum"}},
		{"comment", "a # b + c\n+ d", []string{"a", "d"}},
		{"nothing", `vector(1)`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := metricnames.Referenced(tc.expr)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

func TestReferencedRefusesBrokenExpressions(t *testing.T) {
	for _, expr := range []string{`up{a="b"`, `up{a="b}`, `rate(up[5m)`, `sum(up))[`} {
		_, err := metricnames.Referenced(expr)
		NewWithT(t).Expect(err).To(HaveOccurred(), expr)
	}
}

func TestParse(t *testing.T) {
	g := NewWithT(t)
	got, err := metricnames.Parse("# comment\n\nup  prometheus\npg_up postgres_exporter v0.17\n")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(map[string]string{"up": "prometheus", "pg_up": "postgres_exporter v0.17"}))

	for _, bad := range []string{"up\n", "up a\nup b\n", "1up source\n", "up-x source\n"} {
		_, err := metricnames.Parse(bad)
		g.Expect(err).To(HaveOccurred(), "%q", bad)
	}
}

// TestKnown checks the embedded list itself: it parses, and every source
// names where the metric comes from.
func TestKnown(t *testing.T) {
	g := NewWithT(t)
	known, err := metricnames.Known()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(known).To(HaveKey("up"))
	g.Expect(known).To(HaveKey("pg_up"))
	g.Expect(known).To(HaveKey("mysql_up"))
	g.Expect(known).To(HaveKeyWithValue("database_operator_reconcile_outcomes_total", ContainSubstring("database-operator")))
	for name, source := range known {
		g.Expect(source).To(MatchRegexp(`^(prometheus|postgres_exporter v0\.17|mysqld_exporter v0\.17|kube-state-metrics|kubelet|database-operator)\b`),
			"source of %s", name)
	}
}
