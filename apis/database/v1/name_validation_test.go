package v1_test

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/internal/testenv"
)

// TestNameRules: the Database's name becomes the names of its children, so
// it is held to what they allow (Service names are DNS-1035 labels of at
// most 63 characters, CronJob names at most 52); and spec.storage.class is
// a StorageClass name. The fuzz target (fuzz/) found both.
func TestNameRules(t *testing.T) {
	const base = `type: postgresql, version: "16", storage: {size: 1Gi}`
	const restoreCheck = `type: postgresql, version: "16", storage: {size: 1Gi},
		backup: {enabled: true, s3: {region: eu, bucket: bkt, credentialsSecret: s3}, restoreCheck: {schedule: "@daily"}}`
	for _, tc := range []struct {
		name, spec string
		want       *refusal
	}{
		{name: "orders", spec: base},
		{name: "a" + strings.Repeat("b", 44), spec: base},
		{name: "a" + strings.Repeat("b", 45), spec: base, want: refused("<nil>", testenv.MsgName)},
		{name: "1orders", spec: base, want: refused("<nil>", testenv.MsgName)},
		{name: "orders.eu", spec: base, want: refused("<nil>", testenv.MsgName)},
		{name: "a" + strings.Repeat("c", 37), spec: restoreCheck},
		{name: "a" + strings.Repeat("c", 38), spec: restoreCheck, want: refused("spec.backup.restoreCheck", testenv.MsgNameRestoreCheck)},
		{name: "class-ok", spec: `type: postgresql, version: "16", storage: {size: 1Gi, class: fast.ssd-1}`},
		{name: "class-quote", spec: `type: postgresql, version: "16", storage: {size: 1Gi, class: "fast'$(id)"}`, want: refused("spec.storage.class", testenv.MsgStorageClass)},
		{name: "class-upper", spec: `type: postgresql, version: "16", storage: {size: 1Gi, class: Fast}`, want: refused("spec.storage.class", testenv.MsgStorageClass)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := env.Namespace(t)
			err := env.Client.Create(ctx(t), newDatabase(ns, tc.name, specFromYAML(g, "{"+tc.spec+"}")))
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred(), "the apiserver refused a valid Database")
				return
			}
			expectRefused(t, g, err, tc.want)
		})
	}
}
