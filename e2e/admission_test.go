package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/example/database-operator/internal/testenv"
)

// The rules' messages, shared with the other suite (internal/testenv/messages.go).
const (
	msgTypeEnum       = testenv.MsgTypeEnum
	msgTypeImmutable  = testenv.MsgTypeImmutable
	msgVersionEmpty   = testenv.MsgVersionEmpty
	msgVersionForm    = testenv.MsgVersionForm
	msgReplicasRange  = testenv.MsgReplicasRange
	msgStoragePos     = testenv.MsgStoragePos
	msgStorageShrink  = testenv.MsgStorageShrink
	msgEnvironment    = testenv.MsgEnvironment
	msgProdReplicas   = testenv.MsgProdReplicas
	msgProdLimits     = testenv.MsgProdLimits
	msgPostgresMajor  = testenv.MsgPostgresMajor
	msgMySQLDowngrade = testenv.MsgMySQLDowngrade
	msgSchedule       = testenv.MsgSchedule
	msgRetention      = testenv.MsgRetention
	msgBackupSize     = testenv.MsgBackupSize
)

// databaseYAML is a Database manifest as a user writes it; spec is a YAML
// flow mapping.
func databaseYAML(name, spec string) string {
	return fmt.Sprintf("apiVersion: database.example.com/v1\nkind: Database\nmetadata:\n  name: %s\nspec: %s\n", name, spec)
}

// applyStdin runs `kubectl apply -f -` with manifest on stdin.
func applyStdin(t *testing.T, ns, manifest string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	return kubectl(ctx, manifest, "-n", ns, "apply", "-f", "-")
}

// expectRefused checks that kubectl failed and printed the apiserver's
// refusal: the Database is invalid, on field, with message.
func expectRefused(g Gomega, name, field, message, stdout, stderr string, err error) {
	g.Expect(err).To(HaveOccurred(), "kubectl apply accepted the Database:\n%s", stdout)
	g.Expect(stderr).To(ContainSubstring(fmt.Sprintf(`The Database %q is invalid: `, name)), "stderr")
	g.Expect(stderr).To(ContainSubstring(field+": Invalid value"), "the refusal names the field")
	g.Expect(stderr).To(ContainSubstring(message), "the rule's message")
}

// TestInvalidDatabasesRefused applies invalid Databases with kubectl and
// expects the apiserver to refuse each at admission (the CRD's schema and
// CEL rules, no webhook) with the rule's message on stderr; for the
// transition rules, the stored Database must stay as it was.
func TestInvalidDatabasesRefused(t *testing.T) {
	useSharedOperator(t)
	ns := newNamespace(t)

	creates := []struct {
		name, spec, field, message string
	}{
		{"type-oracle", `{type: oracle, version: "8.0", storage: {size: 1Gi}}`, "spec.type", msgTypeEnum},
		{"version-empty", `{type: mysql, version: "", storage: {size: 1Gi}}`, "spec.version", msgVersionEmpty},
		{"version-latest", `{type: mysql, version: latest, storage: {size: 1Gi}}`, "spec.version", msgVersionForm},
		{"replicas-0", `{type: mysql, version: "8.0", replicas: 0, storage: {size: 1Gi}}`, "spec.replicas", msgReplicasRange},
		{"replicas-11", `{type: postgresql, version: "16", replicas: 11, storage: {size: 1Gi}}`, "spec.replicas", msgReplicasRange},
		{"storage-zero", `{type: mysql, version: "8.0", storage: {size: 0Gi}}`, "spec.storage.size", msgStoragePos},
		{"environment-prod", `{type: mysql, version: "8.0", storage: {size: 1Gi}, environment: prod}`, "spec.environment", msgEnvironment},
		{"production-one-replica", `{type: postgresql, version: "16", replicas: 1, storage: {size: 1Gi}, environment: production}`, "spec.replicas", msgProdReplicas},
		{"production-no-limits", `{type: postgresql, version: "16", replicas: 2, storage: {size: 1Gi}, environment: production, resources: {requests: {cpu: 500m, memory: 1Gi}}}`, "spec.resources", msgProdLimits},
		{"schedule-every-day", `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, schedule: "every day"}}`, "spec.backup.schedule", msgSchedule},
		{"schedule-minute-99", `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, schedule: "99 * * * *"}}`, "spec.backup.schedule", msgSchedule},
		{"retention-7days", `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, retention: 7days}}`, "spec.backup.retention", msgRetention},
		{"backup-size-zero", `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, size: "0"}}`, "spec.backup.size", msgBackupSize},
	}
	for _, tc := range creates {
		t.Run("create "+tc.name, func(t *testing.T) {
			g := NewWithT(t)
			stdout, stderr, err := applyStdin(t, ns, databaseYAML(tc.name, tc.spec))
			expectRefused(g, tc.name, tc.field, tc.message, stdout, stderr, err)
			g.Expect(get(ns, tc.name, &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "database.example.com/v1", "kind": "Database"}})).NotTo(Succeed(), "a refused Database was stored")
		})
	}

	// Transition rules: create a valid Database, then apply a change the
	// rules forbid.
	updates := []struct {
		name, spec, changed, field, message string
	}{
		{"type-change", `{type: mysql, version: "8.4", storage: {size: 1Gi}}`, `{type: postgresql, version: "16", storage: {size: 1Gi}}`, "spec.type", msgTypeImmutable},
		{"storage-shrink", `{type: mysql, version: "8.0", storage: {size: 10Gi}}`, `{type: mysql, version: "8.0", storage: {size: 5Gi}}`, "spec.storage.size", msgStorageShrink},
		{"postgresql-major", `{type: postgresql, version: "14", storage: {size: 1Gi}}`, `{type: postgresql, version: "16", storage: {size: 1Gi}}`, "spec.version", msgPostgresMajor},
		{"mysql-downgrade", `{type: mysql, version: "8.4", storage: {size: 1Gi}}`, `{type: mysql, version: "8.0", storage: {size: 1Gi}}`, "spec.version", msgMySQLDowngrade},
		{"production-one-replica", `{type: mysql, version: "8.0", storage: {size: 1Gi}}`, `{type: mysql, version: "8.0", storage: {size: 1Gi}, environment: production}`, "spec.replicas", msgProdReplicas},
	}
	for _, tc := range updates {
		t.Run("update "+tc.name, func(t *testing.T) {
			g := NewWithT(t)
			stdout, stderr, err := applyStdin(t, ns, databaseYAML(tc.name, tc.spec))
			g.Expect(err).NotTo(HaveOccurred(), "creating the starting Database:\n%s%s", stdout, stderr)
			before := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "database.example.com/v1", "kind": "Database"}}
			g.Expect(get(ns, tc.name, before)).To(Succeed())

			stdout, stderr, err = applyStdin(t, ns, databaseYAML(tc.name, tc.changed))
			expectRefused(g, tc.name, tc.field, tc.message, stdout, stderr, err)

			after := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "database.example.com/v1", "kind": "Database"}}
			g.Expect(get(ns, tc.name, after)).To(Succeed())
			g.Expect(after.Object["spec"]).To(Equal(before.Object["spec"]), "a refused update changed the stored spec")
			g.Expect(after.GetGeneration()).To(Equal(before.GetGeneration()))
		})
	}

	// The refusals above are the apiserver's: nothing but the valid starting
	// Databases exists.
	list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "database.example.com/v1", "kind": "DatabaseList"}}
	NewWithT(t).Expect(k8s.List(ctx(), list, client.InNamespace(ns))).To(Succeed())
	var names []string
	for _, item := range list.Items {
		names = append(names, item.GetName())
	}
	var want []string
	for _, tc := range updates {
		want = append(want, tc.name)
	}
	NewWithT(t).Expect(names).To(ConsistOf(want), "Databases in the namespace: %s", strings.Join(names, ", "))
}
