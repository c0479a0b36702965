package agent

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/instance"
)

// recordingEngine answers Observe with report and counts ConfigurePrimary.
type recordingEngine struct {
	report     instance.Report
	configured *int
}

func (e recordingEngine) Observe(context.Context) (instance.Report, error) { return e.report, nil }
func (e recordingEngine) Promote(context.Context) error                    { return nil }
func (e recordingEngine) ConfigurePrimary(context.Context) error {
	*e.configured++
	return nil
}

// TestOnlyTheChosenPrimaryIsConfigured: a server that runs as a primary is
// configured (made writable, for MySQL) once, and only on the pod the
// operator made the primary: a former primary restarted fenced, on a pod
// now labelled replica, stays fenced until it is demoted.
func TestOnlyTheChosenPrimaryIsConfigured(t *testing.T) {
	for _, c := range []struct {
		name    string
		desired instance.Role
		role    instance.Role
		want    int
	}{
		{name: "the chosen primary", desired: instance.Primary, role: instance.Primary, want: 1},
		{name: "a former primary on a pod now a replica", desired: instance.Replica, role: instance.Primary, want: 0},
		{name: "no role assigned yet", desired: "", role: instance.Primary, want: 0},
		{name: "a replica, not promoted yet", desired: instance.Primary, role: instance.Replica, want: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			n := 0
			a := &runner{cfg: Config{Engine: recordingEngine{report: instance.Report{Role: c.role, Streaming: true}, configured: &n}},
				phase: running, answered: true, desired: c.desired}
			for range 3 {
				g.Expect(a.observeServer(context.Background())).NotTo(BeNil())
			}
			g.Expect(n).To(Equal(c.want), "configured once at most, and only as the chosen primary")
		})
	}
}
