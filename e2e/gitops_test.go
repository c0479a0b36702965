package e2e

// Databases delivered from Git (README, "Deliver Databases with Argo CD"):
// Argo CD syncs with server-side apply and compares with a server-side dry
// run, so it sees no drift only if what the API server would store for the
// Git manifest is what it stores, and a sync of an unchanged manifest
// writes nothing.

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestNoDrift applies a minimal Git-style manifest as Argo CD does
// (server-side, field manager argocd-controller), waits for Ready, then
// checks that a server-side dry-run apply of the same manifest under
// another field manager returns exactly the live spec, and that three more
// syncs change no resourceVersion of the Database or of its children.
func TestNoDrift(t *testing.T) {
	useSharedOperator(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	const name = "orders"
	// Only the fields a user means to set: the CRD defaults the rest.
	manifest := fmt.Sprintf(`apiVersion: database.example.com/v1
kind: Database
metadata:
  name: %s
  namespace: %s
spec:
  type: postgresql
  version: "16"
  storage:
    size: 1Gi
`, name, ns)
	sync := func() string {
		t.Helper()
		return mustKubectl(t, manifest, "apply", "--server-side", "--field-manager=argocd-controller", "-f", "-")
	}
	sync()
	waitReady(t, ns, name, 1)
	g.Eventually(func(g Gomega) {
		podsReady(g, ns, name, 1)
		expectExactChildren(g, ns, 1)
	}).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed())

	// Let the status and the pods settle before watching for writes.
	var before map[string]objectState
	g.Eventually(func(g Gomega) {
		first := snapshot(g, ns)
		time.Sleep(time.Second)
		before = snapshot(g, ns)
		g.Expect(changes(first, before)).To(BeEmpty())
	}).WithTimeout(appearTimeout).WithPolling(poll).Should(Succeed())
	var kinds []string
	for key := range before {
		kind, _, _ := strings.Cut(key, "/")
		kinds = append(kinds, kind)
	}
	for _, kind := range []string{"Database", "StatefulSet", "Service", "ConfigMap", "Secret"} {
		g.Expect(kinds).To(ContainElement(kind), "the snapshot must cover %ss", kind)
	}

	t.Log("a server-side dry run of the Git manifest under another manager returns the live spec")
	var live, dryRun struct {
		Metadata struct {
			Generation      int64  `json:"generation"`
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Spec map[string]any `json:"spec"`
	}
	g.Expect(json.Unmarshal([]byte(mustKubectl(t, "", "-n", ns, "get", "database", name, "-o", "json")), &live)).To(Succeed())
	dry := mustKubectl(t, manifest, "apply", "--server-side", "--dry-run=server", "--field-manager=drift-check", "-o", "json", "-f", "-")
	g.Expect(json.Unmarshal([]byte(dry), &dryRun)).To(Succeed())
	t.Logf("live spec: %v", live.Spec)
	g.Expect(slices.Collect(maps.Keys(live.Spec))).To(ContainElements("replicas", "environment"),
		"the live spec holds the CRD's defaults, which the manifest leaves out")
	g.Expect(dryRun.Spec).To(Equal(live.Spec), "the dry-run apply's spec differs from the live spec: Argo CD would show drift")
	g.Expect(dryRun.Metadata.Generation).To(Equal(live.Metadata.Generation), "the dry run would change the spec")

	t.Log("three more syncs of the unchanged manifest write nothing")
	for range 3 {
		sync()
	}
	time.Sleep(settle)
	after := snapshot(g, ns)
	g.Expect(changes(before, after)).To(BeEmpty(), "a sync of an unchanged manifest wrote to the cluster")
	t.Logf("%d objects unchanged over 3 syncs", len(before))
}
