package v1_test

import (
	"encoding/json"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestRestoreRules: spec.restore is validated when created and may only be
// removed afterwards (every pod mounts the source's backup volume while it
// is set).
func TestRestoreRules(t *testing.T) {
	ns := env.Namespace(t)
	creates := []createCase{
		{name: "ok named", spec: `{type: postgresql, version: "16", storage: {size: 1Gi}, restore: {fromDatabase: orders, backup: orders-20250102T020000Z.sql.gz}}`},
		{name: "ok latest", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}, restore: {fromDatabase: orders}}`},
		{name: "missing from", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}, restore: {backup: x.sql.gz}}`, want: refused("spec.restore.fromDatabase", "Required value").notChecked()},
		{name: "bad from", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}, restore: {fromDatabase: Bad_Name}}`, want: refused("spec.restore.fromDatabase", "should match")},
		{name: "bad backup", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}, restore: {fromDatabase: a, backup: ../x.sql.gz}}`, want: refused("spec.restore.backup", "should match")},
	}
	for i, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := env.Client.Create(ctx(t), newDatabase(ns, fmt.Sprintf("c-%02d", i), specFromYAML(g, tc.spec)))
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			expectRefused(t, g, err, tc.want)
		})
	}
	const msgAdd = "spec.restore can only be set when the Database is created"
	const msgImm = "spec.restore is immutable; it may only be removed, once the restore is done"
	updates := []struct {
		name, spec, patch string
		want              *refusal
	}{
		{"add", `{type: mysql, version: "8.4", storage: {size: 1Gi}}`, `{restore: {fromDatabase: orders}}`, refused("spec.restore", msgAdd)},
		{"change from", `{type: mysql, version: "8.4", storage: {size: 1Gi}, restore: {fromDatabase: orders}}`, `{restore: {fromDatabase: other}}`, refused("spec.restore", msgImm)},
		{"add backup", `{type: mysql, version: "8.4", storage: {size: 1Gi}, restore: {fromDatabase: orders}}`, `{restore: {backup: a.sql.gz}}`, refused("spec.restore", msgImm)},
		{"remove", `{type: mysql, version: "8.4", storage: {size: 1Gi}, restore: {fromDatabase: orders}}`, `{restore: null}`, nil},
		{"other change", `{type: mysql, version: "8.4", storage: {size: 1Gi}, restore: {fromDatabase: orders}}`, `{replicas: 3}`, nil},
	}
	for i, tc := range updates {
		t.Run("update "+tc.name, func(t *testing.T) {
			g := NewWithT(t)
			db := newDatabase(ns, fmt.Sprintf("u-%02d", i), specFromYAML(g, tc.spec))
			g.Expect(env.Client.Create(ctx(t), db)).To(Succeed())
			patch, _ := json.Marshal(map[string]any{"spec": specFromYAML(g, tc.patch)})
			err := env.Client.Patch(ctx(t), db, client.RawPatch(types.MergePatchType, patch))
			after := getSpec(g, ns, db.GetName())
			t.Logf("after: %v err: %v", after["restore"], err)
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			expectRefused(t, g, err, tc.want)
		})
	}
}
