package v1_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/example/database-operator/internal/testenv"
)

// TestTLSRules: spec.tls.secretName needs enabled, is a Secret name, and is
// never the Database's own credentials Secret (a rule on the whole object,
// since only it sees metadata.name).
func TestTLSRules(t *testing.T) {
	const base = `type: postgresql, version: "16", storage: {size: 1Gi}`
	spec := func(tls string) string { return "{" + base + ", tls: " + tls + "}" }
	cases := []createCase{
		{name: "enabled, operator certificate", spec: spec(`{enabled: true}`)},
		{name: "enabled with secretName", spec: spec(`{enabled: true, secretName: orders-cert}`)},
		{name: "dotted secretName", spec: spec(`{enabled: true, secretName: db.tls.example}`)},
		{name: "disabled", spec: spec(`{enabled: false}`)},
		{name: "empty", spec: spec(`{}`)},
		{name: "production with secretName", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}, environment: production, replicas: 2, tls: {enabled: true, secretName: mysql-cert}}`},
		{name: "another Database's credentials", spec: spec(`{enabled: true, secretName: other-credentials}`)},

		{name: "secretName without enabled", spec: spec(`{secretName: orders-cert}`), want: refused("spec.tls.secretName", testenv.MsgTLSSecretNeedsEnabled)},
		{name: "secretName with enabled false", spec: spec(`{enabled: false, secretName: orders-cert}`), want: refused("spec.tls.secretName", testenv.MsgTLSSecretNeedsEnabled)},
		{name: "upper-case secretName", spec: spec(`{enabled: true, secretName: Orders_Cert}`), want: refused("spec.tls.secretName", testenv.MsgTLSSecretName)},
		{name: "secretName ends with a dash", spec: spec(`{enabled: true, secretName: orders-}`), want: refused("spec.tls.secretName", testenv.MsgTLSSecretName)},
		{name: "empty secretName", spec: spec(`{enabled: true, secretName: ""}`), want: refused("spec.tls.secretName", testenv.MsgTLSSecretName)},
		{name: "secretName too long", spec: spec(`{enabled: true, secretName: ` + strings.Repeat("a", 254) + `}`), want: refused("spec.tls.secretName", "Too long").notChecked()},
		// CREDENTIALS is replaced by this case's own credentials Secret name.
		{name: "own credentials Secret", spec: spec(`{enabled: true, secretName: CREDENTIALS}`), want: refused("spec.tls.secretName", testenv.MsgTLSSecretCredentials)},
	}
	ns := env.Namespace(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			name := fmt.Sprintf("tls-%02d", i)
			s := specFromYAML(g, strings.ReplaceAll(tc.spec, "CREDENTIALS", name+"-credentials"))
			err := env.Client.Create(ctx(t), newDatabase(ns, name, s))
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred(), "the apiserver refused a valid spec")
				g.Expect(getSpec(g, ns, name)).To(containFields(s))
				return
			}
			expectRefused(t, g, err, tc.want)
		})
	}
}

// TestTLSTransitionMySQL: a MySQL replica's replication settings are written
// once, when it is created, so spec.tls.enabled may only change while the
// Database has one pod, before and after the update. An absent tls or
// enabled counts as off (has() on each level), so adding an empty tls or an
// explicit false is no change. PostgreSQL replicas follow a change by
// themselves and are not restricted.
func TestTLSTransitionMySQL(t *testing.T) {
	const mysql = `type: mysql, version: "8.4", storage: {size: 1Gi}`
	spec := func(rest string) string { return "{" + mysql + rest + "}" }
	refusedTLS := refused("spec.tls", testenv.MsgTLSMySQLReplicas)
	cases := []updateCase{
		// One pod before and after: allowed, both ways.
		{name: "1 replica, off to on", spec: spec(``), patch: `{tls: {enabled: true}}`},
		{name: "1 replica, on to off", spec: spec(`, tls: {enabled: true}`), patch: `{tls: {enabled: false}}`},
		{name: "1 replica, on with secretName to off", spec: spec(`, tls: {enabled: true, secretName: mysql-cert}`), patch: `{tls: {enabled: false, secretName: null}}`},
		{name: "explicit replicas 1, disabled to on", spec: spec(`, replicas: 1, tls: {enabled: false}`), patch: `{tls: {enabled: true}}`},

		// Replicas, TLS setting unchanged: allowed.
		{name: "3 replicas, TLS on, scale to 2", spec: spec(`, replicas: 3, tls: {enabled: true}`), patch: `{replicas: 2}`},
		{name: "3 replicas, TLS on, scale to 1", spec: spec(`, replicas: 3, tls: {enabled: true}`), patch: `{replicas: 1}`},
		{name: "3 replicas, no tls to empty tls", spec: spec(`, replicas: 3`), patch: `{tls: {}}`},
		{name: "3 replicas, no tls to enabled false", spec: spec(`, replicas: 3`), patch: `{tls: {enabled: false}}`},
		{name: "3 replicas, TLS on, another Secret", spec: spec(`, replicas: 3, tls: {enabled: true}`), patch: `{tls: {secretName: mysql-cert}}`},
		{name: "1 replica, TLS on, scale to 3", spec: spec(`, tls: {enabled: true}`), patch: `{replicas: 3}`},
		{name: "postgresql 3 replicas, off to on", spec: `{type: postgresql, version: "16", storage: {size: 1Gi}, replicas: 3}`, patch: `{tls: {enabled: true}}`},
		{name: "postgresql 3 replicas, on to off", spec: `{type: postgresql, version: "16", storage: {size: 1Gi}, replicas: 3, tls: {enabled: true}}`, patch: `{tls: {enabled: false}}`},

		// A change with replicas, before or after: refused.
		{name: "2 replicas, off to on", spec: spec(`, replicas: 2`), patch: `{tls: {enabled: true}}`, want: refusedTLS},
		{name: "3 replicas, on to off", spec: spec(`, replicas: 3, tls: {enabled: true}`), patch: `{tls: {enabled: false}}`, want: refusedTLS},
		{name: "3 replicas, on to tls removed", spec: spec(`, replicas: 3, tls: {enabled: true}`), patch: `{tls: null}`, want: refusedTLS},
		{name: "3 replicas, empty tls to on", spec: spec(`, replicas: 3, tls: {}`), patch: `{tls: {enabled: true}}`, want: refusedTLS},
		{name: "production 2 replicas, on to off", spec: spec(`, environment: production, replicas: 2, tls: {enabled: true}`), patch: `{tls: {enabled: false}}`, want: refusedTLS},
		{name: "scale 3 to 1 and turn on together", spec: spec(`, replicas: 3`), patch: `{replicas: 1, tls: {enabled: true}}`, want: refusedTLS},
		{name: "turn on and scale 1 to 3 together", spec: spec(``), patch: `{replicas: 3, tls: {enabled: true}}`, want: refusedTLS},
	}
	runUpdateCases(t, "tls-update", cases)
}

// TestTLSTransitionMySQLProcedure walks the procedure the refusal gives:
// scale to 1, change spec.tls, scale up again (deleting the replicas' data
// PVCs in between is the cluster's part, not the API's).
func TestTLSTransitionMySQLProcedure(t *testing.T) {
	g := NewWithT(t)
	ns := env.Namespace(t)
	db := newDatabase(ns, "tls-procedure", specFromYAML(g, `{type: mysql, version: "8.4", storage: {size: 1Gi}, replicas: 3}`))
	g.Expect(env.Client.Create(ctx(t), db)).To(Succeed())
	patch := func(spec string) error {
		raw, err := json.Marshal(map[string]any{"spec": specFromYAML(g, spec)})
		g.Expect(err).NotTo(HaveOccurred())
		return env.Client.Patch(ctx(t), db, client.RawPatch(types.MergePatchType, raw))
	}
	expectRefused(t, g, patch(`{tls: {enabled: true}}`), refused("spec.tls", testenv.MsgTLSMySQLReplicas))
	g.Expect(patch(`{replicas: 1}`)).To(Succeed())
	g.Expect(patch(`{tls: {enabled: true}}`)).To(Succeed())
	g.Expect(patch(`{replicas: 3}`)).To(Succeed())
	g.Expect(getSpec(g, ns, "tls-procedure")).To(containFields(map[string]any{"replicas": int64(3), "tls": map[string]any{"enabled": true}}))
	expectRefused(t, g, patch(`{tls: {enabled: false}}`), refused("spec.tls", testenv.MsgTLSMySQLReplicas))
}
