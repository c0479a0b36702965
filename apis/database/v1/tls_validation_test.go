package v1_test

import (
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

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
