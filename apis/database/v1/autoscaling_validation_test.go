package v1_test

import (
	"encoding/json"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The autoscaling rules' messages, verbatim from database_types.go.
const (
	msgAutoscalingMinRange  = "spec.autoscaling.minReplicas must be between 1 and 10"
	msgAutoscalingMaxRange  = "spec.autoscaling.maxReplicas must be between 1 and 10"
	msgAutoscalingMinMax    = "spec.autoscaling.minReplicas must not be greater than spec.autoscaling.maxReplicas"
	msgAutoscalingTarget    = "spec.autoscaling needs a target: set targetCPUUtilizationPercentage, targetMemoryUtilizationPercentage or both"
	msgAutoscalingProdMin   = "spec.autoscaling.minReplicas must be at least 2 when spec.environment is production"
	msgAutoscalingCPU       = "spec.autoscaling.targetCPUUtilizationPercentage must be between 1 and 100"
	msgAutoscalingMemory    = "spec.autoscaling.targetMemoryUtilizationPercentage must be between 1 and 100"
	msgAutoscalingScaleDown = "spec.autoscaling.scaleDownStabilizationSeconds must be between 0 and 3600"
)

// TestAutoscalingRules: spec.autoscaling is min ≤ max ≤ 10, min ≥ 1 (≥ 2 in
// production), with at least one utilisation target.
func TestAutoscalingRules(t *testing.T) {
	const base = `type: postgresql, version: "16", storage: {size: 1Gi}`
	prod := `type: postgresql, version: "16", storage: {size: 1Gi}, environment: production, replicas: 2`
	spec := func(s, autoscaling string) string { return "{" + s + ", autoscaling: " + autoscaling + "}" }
	cases := []createCase{
		{name: "cpu target", spec: spec(base, `{minReplicas: 1, maxReplicas: 5, targetCPUUtilizationPercentage: 70}`)},
		{name: "memory target", spec: spec(base, `{minReplicas: 2, maxReplicas: 2, targetMemoryUtilizationPercentage: 80}`)},
		{name: "both targets and scale-down", spec: spec(base, `{minReplicas: 1, maxReplicas: 10, targetCPUUtilizationPercentage: 1, targetMemoryUtilizationPercentage: 100, scaleDownStabilizationSeconds: 0}`)},
		{name: "scale-down 3600", spec: spec(base, `{maxReplicas: 3, targetCPUUtilizationPercentage: 60, scaleDownStabilizationSeconds: 3600}`)},
		{name: "min defaulted", spec: spec(base, `{maxReplicas: 3, targetCPUUtilizationPercentage: 60}`)},
		{name: "staging min 1", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}, environment: staging, autoscaling: {minReplicas: 1, maxReplicas: 4, targetCPUUtilizationPercentage: 70}}`},
		{name: "production min 2", spec: spec(prod, `{minReplicas: 2, maxReplicas: 6, targetCPUUtilizationPercentage: 70}`)},

		{name: "min greater than max", spec: spec(base, `{minReplicas: 5, maxReplicas: 3, targetCPUUtilizationPercentage: 70}`), want: refused("spec.autoscaling.minReplicas", msgAutoscalingMinMax)},
		{name: "max 11", spec: spec(base, `{minReplicas: 2, maxReplicas: 11, targetCPUUtilizationPercentage: 70}`), want: refused("spec.autoscaling.maxReplicas", msgAutoscalingMaxRange)},
		{name: "min 0", spec: spec(base, `{minReplicas: 0, maxReplicas: 3, targetCPUUtilizationPercentage: 70}`), want: refused("spec.autoscaling.minReplicas", msgAutoscalingMinRange)},
		{name: "max missing", spec: spec(base, `{minReplicas: 1, targetCPUUtilizationPercentage: 70}`), want: refused("spec.autoscaling.maxReplicas", msgRequired).notChecked()},
		{name: "no target", spec: spec(base, `{minReplicas: 1, maxReplicas: 3}`), want: refused("spec.autoscaling", msgAutoscalingTarget)},
		{name: "no target, scale-down only", spec: spec(base, `{maxReplicas: 3, scaleDownStabilizationSeconds: 60}`), want: refused("spec.autoscaling", msgAutoscalingTarget)},
		{name: "production min 1", spec: spec(prod, `{minReplicas: 1, maxReplicas: 6, targetCPUUtilizationPercentage: 70}`), want: refused("spec.autoscaling.minReplicas", msgAutoscalingProdMin)},
		{name: "production min defaulted to 1", spec: spec(prod, `{maxReplicas: 6, targetCPUUtilizationPercentage: 70}`), want: refused("spec.autoscaling.minReplicas", msgAutoscalingProdMin)},
		{name: "cpu 0", spec: spec(base, `{maxReplicas: 3, targetCPUUtilizationPercentage: 0}`), want: refused("spec.autoscaling.targetCPUUtilizationPercentage", msgAutoscalingCPU)},
		{name: "memory 101", spec: spec(base, `{maxReplicas: 3, targetMemoryUtilizationPercentage: 101}`), want: refused("spec.autoscaling.targetMemoryUtilizationPercentage", msgAutoscalingMemory)},
		{name: "scale-down 3601", spec: spec(base, `{maxReplicas: 3, targetCPUUtilizationPercentage: 70, scaleDownStabilizationSeconds: 3601}`), want: refused("spec.autoscaling.scaleDownStabilizationSeconds", msgAutoscalingScaleDown)},
	}
	ns := env.Namespace(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			s := specFromYAML(g, tc.spec)
			err := env.Client.Create(ctx(t), newDatabase(ns, fmt.Sprintf("as-%02d", i), s))
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred(), "the apiserver refused a valid spec")
				g.Expect(getSpec(g, ns, fmt.Sprintf("as-%02d", i))).To(containFields(s))
				return
			}
			expectRefused(t, g, err, tc.want)
		})
	}

	t.Run("min defaults to 1", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(env.Client.Create(ctx(t), newDatabase(ns, "as-default", specFromYAML(g, spec(base, `{maxReplicas: 3, targetCPUUtilizationPercentage: 60}`))))).To(Succeed())
		autoscaling := getSpec(g, ns, "as-default")["autoscaling"]
		g.Expect(autoscaling).To(HaveKeyWithValue("minReplicas", int64(1)))
		g.Expect(autoscaling).NotTo(HaveKey("scaleDownStabilizationSeconds"))
	})

	updates := []updateCase{
		{name: "turn on", spec: "{" + base + "}", patch: `{autoscaling: {minReplicas: 1, maxReplicas: 4, targetCPUUtilizationPercentage: 70}}`},
		{name: "turn off", spec: spec(base, `{maxReplicas: 4, targetCPUUtilizationPercentage: 70}`), patch: `{autoscaling: null}`},
		{name: "to production with min 1", spec: spec(base, `{minReplicas: 1, maxReplicas: 4, targetCPUUtilizationPercentage: 70}`), patch: `{environment: production, replicas: 2}`, want: refused("spec.autoscaling.minReplicas", msgAutoscalingProdMin)},
		{name: "to production with min 2", spec: spec(base, `{minReplicas: 2, maxReplicas: 4, targetCPUUtilizationPercentage: 70}`), patch: `{environment: production, replicas: 2}`},
		{name: "drop the last target", spec: spec(base, `{maxReplicas: 4, targetCPUUtilizationPercentage: 70}`), patch: `{autoscaling: {targetCPUUtilizationPercentage: null}}`, want: refused("spec.autoscaling", msgAutoscalingTarget)},
	}
	for i, tc := range updates {
		t.Run("update "+tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			db := newDatabase(ns, fmt.Sprintf("as-u-%02d", i), specFromYAML(g, tc.spec))
			g.Expect(env.Client.Create(ctx(t), db)).To(Succeed(), "creating the starting Database")
			before := getSpec(g, ns, db.GetName())
			patch, err := json.Marshal(map[string]any{"spec": specFromYAML(g, tc.patch)})
			g.Expect(err).NotTo(HaveOccurred())
			err = env.Client.Patch(ctx(t), db, client.RawPatch(types.MergePatchType, patch))
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred(), "the apiserver refused a valid update")
				return
			}
			expectRefused(t, g, err, tc.want)
			g.Expect(getSpec(g, ns, db.GetName())).To(Equal(before), "a refused update changed the stored spec")
		})
	}
}
