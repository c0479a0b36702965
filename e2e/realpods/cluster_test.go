package realpods

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The cluster itself: what the database tests rely on, checked on its own
// so a failure there names the part that broke.

// TestClusterNodes: three nodes, each Ready with its own pod subnet.
func TestClusterNodes(t *testing.T) {
	g := NewWithT(t)
	var nodes corev1.NodeList
	g.Expect(k8s.List(context.Background(), &nodes)).To(Succeed())
	g.Expect(nodes.Items).To(HaveLen(3), "the real-pod cluster has three nodes")
	for _, n := range nodes.Items {
		g.Expect(nodeReady(&n)).To(BeTrue(), "node %s is not Ready", n.Name)
	}
}

// TestClusterStorage: a claim binds to a folder on the node of its first
// pod; the volume's root is a fresh filesystem's (root-owned, lost+found);
// a pod running as uid 999 with fsGroup 999 can write it; the data
// survives the pod; a claim of a class that does not exist binds too; and
// the class refuses to grow a claim, as it cannot.
func TestClusterStorage(t *testing.T) {
	ns := newNamespace(t, "storage")
	ctx := context.Background()
	for _, tc := range []struct{ name, class string }{
		{name: "vol-default"},
		{name: "vol-other", class: "no-such-class"},
	} {
		name, class := tc.name, tc.class
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		}
		if class != "" {
			pvc.Spec.StorageClassName = ptr.To(class)
		}
		if err := k8s.Create(ctx, pvc); err != nil {
			t.Fatalf("create claim: %v", err)
		}
		writer := volumePod(ns, name+"-writer", name, `stat -c '%u %g %a' /data > /tmp/root && ls -A /data > /tmp/entries &&
echo written-by-$(id -u) > /data/file && sleep infinity`)
		g := NewWithT(t)
		g.Expect(k8s.Create(ctx, writer)).To(Succeed())
		waitPodsReady(t, ns, 2*time.Minute, writer.Name)
		root, err := execIn(ns, writer.Name, "", 20*time.Second, "cat", "/tmp/root", "/tmp/entries")
		g.Expect(err).NotTo(HaveOccurred())
		// Root-owned; the kubelet gave the volume the pod's fsGroup (setgid, group-writable).
		g.Expect(strings.Fields(root)).To(HaveExactElements("0", "999", "2775", "lost+found"),
			"volume root (uid gid mode, entries) of class %q", class)
		node := getPod(t, ns, writer.Name).Spec.NodeName
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pvc), pvc)).To(Succeed())
		var pv corev1.PersistentVolume
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, &pv)).To(Succeed())
		g.Expect(pv.Spec.Local).NotTo(BeNil(), "a local volume (the kubelet applies fsGroup to those)")
		g.Expect(pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values).To(ConsistOf(node))

		g.Expect(k8s.Delete(ctx, writer, client.GracePeriodSeconds(0))).To(Succeed())
		reader := volumePod(ns, name+"-reader", name, `cat /data/file > /tmp/file && sleep infinity`)
		g.Expect(k8s.Create(ctx, reader)).To(Succeed())
		waitPodsReady(t, ns, 2*time.Minute, reader.Name)
		out, err := execIn(ns, reader.Name, "", 20*time.Second, "cat", "/tmp/file")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(strings.TrimSpace(out)).To(Equal("written-by-999"), "the data outlives the pod that wrote it")
		g.Expect(getPod(t, ns, reader.Name).Spec.NodeName).To(Equal(node), "the volume keeps its pods on its node")
	}

	// Growing a claim is refused by the API server: the class says it cannot expand.
	var pvc corev1.PersistentVolumeClaim
	g := NewWithT(t)
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "vol-default"}, &pvc)).To(Succeed())
	pvc.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
	err := k8s.Update(ctx, &pvc)
	g.Expect(err).To(MatchError(ContainSubstring("storageclass that provisions the pvc must support resize")))
}

// volumePod runs script as uid 999 with fsGroup 999 and claim at /data; it
// is Ready once script reaches its sleep.
func volumePod(ns, name, claim, script string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: restrictedPod(corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "main", Image: clientImage, Command: []string{"bash", "-c", script},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}},
		}),
	}
	return pod
}

// TestClusterNoEgress: nothing a pod sends leaves the machine. A pod's
// connection to an address outside it fails, and the packets were dropped
// by the cluster's guard (its counter grew), not lost somewhere outside.
// Names outside cluster.local do not resolve (CoreDNS has no upstream),
// names inside do.
func TestClusterNoEgress(t *testing.T) {
	ns := newNamespace(t, "egress")
	g := NewWithT(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"},
		Spec: restrictedPod(corev1.PodSpec{Containers: []corev1.Container{{
			Name: "main", Image: clientImage, Command: []string{"sleep", "infinity"}}}}),
	}
	g.Expect(k8s.Create(context.Background(), pod)).To(Succeed())
	waitPodsReady(t, ns, 2*time.Minute, pod.Name)

	before := egressDrops(t)
	// 203.0.113.1 is TEST-NET-3 (RFC 5737): outside this machine, never anyone's host.
	_, err := execIn(ns, pod.Name, "", 30*time.Second, "bash", "-c", "timeout 3 bash -c 'exec 3<>/dev/tcp/203.0.113.1/443'")
	g.Expect(err).To(HaveOccurred(), "a connection to an outside address must fail")
	after := egressDrops(t)
	g.Expect(after).To(BeNumerically(">", before), "the egress guard dropped the pod's packets")
	measured(t, "egress guard: %d packets dropped for one outbound connection attempt", after-before)

	out, err := execIn(ns, pod.Name, "", 30*time.Second, "getent", "hosts", "kubernetes.default.svc.cluster.local")
	g.Expect(err).NotTo(HaveOccurred(), "cluster names resolve")
	g.Expect(out).To(ContainSubstring("10.96.0.1"))
	start := time.Now()
	_, err = execIn(ns, pod.Name, "", 30*time.Second, "getent", "hosts", "deb.debian.org")
	g.Expect(err).To(HaveOccurred(), "names outside the cluster must not resolve")
	measured(t, "an outside name failed to resolve in %s", time.Since(start).Round(10*time.Millisecond))
	var cm corev1.ConfigMap
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: "kube-system", Name: "coredns"}, &cm)).To(Succeed())
	g.Expect(cm.Data["Corefile"]).NotTo(ContainSubstring("forward"), "CoreDNS has no upstream")
}

// egressDrops is the packet count of the egress guard's DROP rule.
func egressDrops(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("iptables", "-t", "mangle", "-L", "DBOP-REAL-EGRESS", "-v", "-x", "-n").CombinedOutput()
	if err != nil {
		t.Fatalf("read the egress guard: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "DROP" {
			n, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatalf("egress guard counter %q: %v", f[0], err)
			}
			return n
		}
	}
	t.Fatalf("the egress guard has no DROP rule:\n%s", out)
	return 0
}

// TestPodSecurityRestricted: the suite's namespaces enforce the restricted
// standard for real: a pod that runs as root without a seccomp profile is
// refused there (so every pod the other tests run was admitted by it).
func TestPodSecurityRestricted(t *testing.T) {
	ns := newNamespace(t, "psa")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "root"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: clientImage, Command: []string{"sleep", "1"}}}},
	}
	err := k8s.Create(context.Background(), pod)
	NewWithT(t).Expect(err).To(MatchError(ContainSubstring(`violates PodSecurity "restricted:latest"`)))
}

// TestClusterNodeLoss: a node can be lost and brought back. Its kubelet,
// pods and containerd are killed at once; the control plane marks it
// NotReady; started again it is Ready and its pods run again.
func TestClusterNodeLoss(t *testing.T) {
	ns := newNamespace(t, "nodeloss")
	g := NewWithT(t)
	const node, ordinal = "node-2", "2"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pinned"},
		Spec: restrictedPod(corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name: "main", Image: clientImage, Command: []string{"sleep", "infinity"}}}}),
	}
	g.Expect(k8s.Create(context.Background(), pod)).To(Succeed())
	waitPodsReady(t, ns, 2*time.Minute, pod.Name)
	containerID := getPod(t, ns, pod.Name).Status.ContainerStatuses[0].ContainerID
	g.Expect(hostProcessOf(containerID)).NotTo(BeZero(), "the pod's process runs on the host before the node is lost")

	t.Cleanup(func() { clusterScript(t, "node-start", ordinal) }) // also when the test fails half-way
	start := time.Now()
	clusterScript(t, "node-stop", ordinal)
	g.Expect(hostProcessOf(containerID)).To(BeZero(), "the pod's process died with its node")
	NewWithT(t).Eventually(func() bool {
		var n corev1.Node
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: node}, &n)).To(Succeed())
		return nodeReady(&n)
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(BeFalse())
	measured(t, "node loss noticed (NotReady) after %s", time.Since(start).Round(time.Second))

	start = time.Now()
	clusterScript(t, "node-start", ordinal)
	NewWithT(t).Eventually(func() bool {
		var n corev1.Node
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: node}, &n)).To(Succeed())
		return nodeReady(&n)
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(BeTrue())
	NewWithT(t).Eventually(func(g Gomega) {
		p := getPod(t, ns, pod.Name)
		g.Expect(podReady(p)).To(BeTrue())
		g.Expect(p.Status.ContainerStatuses[0].ContainerID).NotTo(Equal(containerID), "a new container")
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	measured(t, "node back: Ready and its pod running again %s after the restart", time.Since(start).Round(time.Second))
	// The cluster's own pods that lived on the node (CoreDNS, the operator)
	// are back too before the next test starts.
	NewWithT(t).Eventually(func(g Gomega) {
		for _, ns := range []string{"kube-system", operatorNamespace} {
			var pods corev1.PodList
			g.Expect(k8s.List(context.Background(), &pods, client.InNamespace(ns))).To(Succeed())
			for _, p := range pods.Items {
				g.Expect(podReady(&p)).To(BeTrue(), "pod %s/%s", ns, p.Name)
			}
		}
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
}

// clusterScript runs e2e/realcluster/cluster.sh with the environment the
// Makefile gave the suite.
func clusterScript(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := runCommand(ctx, "", filepath.Join(repoRoot, "e2e", "realcluster", "cluster.sh"), args...)
	if err != nil {
		t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ppidField is the parent PID line of /proc/<pid>/status.
var ppidField = regexp.MustCompile(`(?m)^PPid:\s+(\d+)$`)

// hostProcessOf is the host PID of a container's first process (the one
// its runtime started; the server, for the database containers), 0 when it
// has none. It is found by the container's cgroup: the process in it whose
// parent is not.
func hostProcessOf(containerID string) int {
	id := containerID[strings.Index(containerID, "://")+3:]
	inContainer := map[int]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cg, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err == nil && strings.Contains(string(cg), id) {
			inContainer[pid] = true
		}
	}
	for pid := range inContainer {
		status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			continue
		}
		m := ppidField.FindSubmatch(status)
		if m == nil {
			continue
		}
		if ppid, _ := strconv.Atoi(string(m[1])); !inContainer[ppid] {
			return pid
		}
	}
	return 0
}
