package reconcile

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Reconcile outcomes, the label of reconcileOutcomes.
const (
	outcomeSuccess  = "success"
	outcomeDegraded = "degraded"
	outcomeError    = "error"
)

// reconcileOutcomes counts reconciles by outcome: success, degraded (a
// problem that needs a human, reported on the Database), or error (retried
// with backoff). controller-runtime's own metrics count reconciles and
// their latency; this says which of them left a Database degraded.
var reconcileOutcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "database_operator_reconcile_outcomes_total",
	Help: "Database reconciles by outcome: success, degraded (needs a human), error (retried).",
}, []string{"outcome"})

func init() {
	metrics.Registry.MustRegister(reconcileOutcomes)
}
