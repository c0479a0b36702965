package dashboards_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/internal/metricnames"
)

var chartDir = filepath.Join("..", "..", "charts", "database-operator")

type target struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Datasource map[string]any `json:"datasource"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    map[string]int `json:"gridPos"`
	Targets    []target       `json:"targets"`
	Panels     []panel        `json:"panels"`
}

type variable struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query any    `json:"query"`
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

func load(t *testing.T) (dashboard, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "databases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("databases.json is not valid JSON: %v", err)
	}
	if !json.Valid(raw) {
		t.Fatal("databases.json is not valid JSON")
	}
	return d, raw
}

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		if p.Type == "row" {
			out = append(out, allPanels(p.Panels)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// TestDashboardPanels: every panel queries the dashboard's Prometheus data
// source, has targets with expressions, and a unique id; the Database panels
// are scoped by the namespace and database variables.
func TestDashboardPanels(t *testing.T) {
	g := NewWithT(t)
	d, _ := load(t)
	g.Expect(d.UID).NotTo(BeEmpty())
	g.Expect(d.Title).NotTo(BeEmpty())

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	g.Expect(vars).To(HaveKeyWithValue("datasource", HaveField("Type", "datasource")))
	g.Expect(vars).To(HaveKeyWithValue("namespace", HaveField("Type", "query")))
	g.Expect(vars).To(HaveKeyWithValue("database", HaveField("Type", "query")))

	panels := allPanels(d.Panels)
	g.Expect(panels).NotTo(BeEmpty())
	ids := map[int]string{}
	for _, p := range panels {
		g.Expect(ids).NotTo(HaveKey(p.ID), "panel %q reuses id %d of %q", p.Title, p.ID, ids[p.ID])
		ids[p.ID] = p.Title
		g.Expect(p.Title).NotTo(BeEmpty(), "panel %d", p.ID)
		g.Expect(p.GridPos).To(HaveKey("w"), "panel %q", p.Title)
		g.Expect(p.Datasource).To(HaveKeyWithValue("uid", "${datasource}"), "panel %q datasource", p.Title)
		g.Expect(p.Targets).NotTo(BeEmpty(), "panel %q has no targets", p.Title)
		for _, tg := range p.Targets {
			g.Expect(tg.Expr).NotTo(BeEmpty(), "panel %q target %s", p.Title, tg.RefID)
			g.Expect(tg.Datasource).To(HaveKeyWithValue("uid", "${datasource}"), "panel %q target %s", p.Title, tg.RefID)
			if strings.Contains(tg.Expr, "database_operator_") {
				continue // The operator's own metrics cover every Database.
			}
			g.Expect(tg.Expr).To(ContainSubstring(`namespace="$namespace"`), "panel %q target %s", p.Title, tg.RefID)
			g.Expect(tg.Expr).To(ContainSubstring("$database"), "panel %q target %s", p.Title, tg.RefID)
		}
	}
}

// nameRegexp finds {__name__=~"a|b"} selectors in variable queries.
var nameRegexp = regexp.MustCompile(`__name__=~"([^"]+)"`)

// TestDashboardMetricsAreKnown: every metric the dashboard queries, in
// panels and in variables, is in internal/metricnames/metrics.txt; and the
// dashboard covers both engines and the operator.
func TestDashboardMetricsAreKnown(t *testing.T) {
	g := NewWithT(t)
	d, _ := load(t)
	known, err := metricnames.Known()
	g.Expect(err).NotTo(HaveOccurred())

	used := map[string]bool{}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			names, err := metricnames.Referenced(tg.Expr)
			g.Expect(err).NotTo(HaveOccurred(), "panel %q target %s", p.Title, tg.RefID)
			g.Expect(names).NotTo(BeEmpty(), "panel %q target %s queries no metric", p.Title, tg.RefID)
			for _, n := range names {
				used[n] = true
				g.Expect(known).To(HaveKey(n), "panel %q queries %s, which internal/metricnames/metrics.txt does not list", p.Title, n)
			}
		}
	}
	for _, v := range d.Templating.List {
		raw, err := json.Marshal(v.Query)
		g.Expect(err).NotTo(HaveOccurred())
		for _, m := range nameRegexp.FindAllStringSubmatch(strings.ReplaceAll(string(raw), `\"`, `"`), -1) {
			for _, n := range strings.Split(m[1], "|") {
				g.Expect(known).To(HaveKey(n), "variable %s queries %s, which metrics.txt does not list", v.Name, n)
			}
		}
	}
	for _, want := range []string{"pg_up", "mysql_up", "pg_replication_lag_seconds", "mysql_slave_status_seconds_behind_source",
		"kubelet_volume_stats_available_bytes", "kube_cronjob_status_last_successful_time", "database_operator_reconcile_outcomes_total"} {
		g.Expect(used).To(HaveKey(want), "the dashboard should query %s", want)
	}
}

// TestChartShipsDashboard: the chart's opt-in template embeds this file.
func TestChartShipsDashboard(t *testing.T) {
	g := NewWithT(t)
	tpl, err := os.ReadFile(filepath.Join(chartDir, "templates", "dashboards.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(tpl)).To(ContainSubstring(`.Files.Get "dashboards/databases.json"`))
	g.Expect(string(tpl)).To(HavePrefix("{{- if .Values.dashboards.enabled }}"))
}
