package v1_test

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
)

// TestNetworkPolicyRules: spec.networkPolicy's peers need a selector and the
// monitoring namespace is a namespace name.
func TestNetworkPolicyRules(t *testing.T) {
	const base = `type: mysql, version: "8.4", storage: {size: 1Gi}`
	spec := func(np string) string { return "{" + base + ", networkPolicy: " + np + "}" }
	const msgPeer = "spec.networkPolicy.allowFrom: each entry needs a namespaceSelector, a podSelector or both"
	cases := []createCase{
		{name: "enabled with peers", spec: spec(`{enabled: true, monitoringNamespace: observability, allowFrom: [{podSelector: {matchLabels: {app: shop}}}, {namespaceSelector: {matchLabels: {team: a}}, podSelector: {}}, {namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [b, c]}]}}]}`)},
		{name: "disabled", spec: spec(`{enabled: false}`)},
		{name: "enabled unset", spec: spec(`{allowFrom: [{podSelector: {matchLabels: {app: shop}}}]}`)},
		{name: "empty peer", spec: spec(`{enabled: true, allowFrom: [{podSelector: {matchLabels: {app: shop}}}, {}]}`), want: refused("spec.networkPolicy.allowFrom[1]", msgPeer)},
		{name: "bad monitoring namespace", spec: spec(`{monitoringNamespace: Monitoring_NS}`), want: refused("spec.networkPolicy.monitoringNamespace", "should match")},
	}
	ns := env.Namespace(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			s := specFromYAML(g, tc.spec)
			err := env.Client.Create(ctx(t), newDatabase(ns, fmt.Sprintf("np-%02d", i), s))
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred(), "the apiserver refused a valid spec")
				g.Expect(getSpec(g, ns, fmt.Sprintf("np-%02d", i))).To(containFields(s))
				return
			}
			expectRefused(t, g, err, tc.want)
		})
	}
}
