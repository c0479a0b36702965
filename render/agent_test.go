package render_test

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// TestReplicationModes: sync mode reaches the primary through the agent's
// flag, never through the engine's configuration file (the image's
// temporary server reads that file, and its commits would wait for a
// standby that cannot exist yet); async mode passes the flag's off value,
// so a primary switched back from sync is reset. PostgreSQL sets
// synchronous_standby_names; MySQL turns semi-synchronous replication on
// at the primary, with both plugins loaded on every server and nothing in
// my.cnf turning the source side on.
func TestReplicationModes(t *testing.T) {
	for _, c := range []struct {
		typ     databasev1.DatabaseType
		version string
		mode    databasev1.ReplicationMode
		want    string
	}{
		{databasev1.PostgreSQL, "16", "", "--synchronous-standby-names="},
		{databasev1.PostgreSQL, "16", databasev1.ReplicationAsync, "--synchronous-standby-names="},
		{databasev1.PostgreSQL, "16", databasev1.ReplicationSync, "--synchronous-standby-names=ANY 1 (*)"},
		{databasev1.MySQL, "8.4", "", "--semi-sync=false"},
		{databasev1.MySQL, "8.4", databasev1.ReplicationAsync, "--semi-sync=false"},
		{databasev1.MySQL, "8.4", databasev1.ReplicationSync, "--semi-sync=true"},
	} {
		t.Run(string(c.typ)+"/"+string(c.mode), func(t *testing.T) {
			g := NewWithT(t)
			db := newDatabase(c.typ, c.version, func(d *databasev1.Database) {
				d.Spec.Replicas = ptr(int32(3))
				d.Spec.Replication = &databasev1.ReplicationSpec{Mode: c.mode}
			})
			rendered := mustRender(t, db)
			sts := typed[appsv1.StatefulSet](t, rendered.StatefulSet)
			g.Expect(containerNamed(g, sts.Spec.Template.Spec.Containers, "database").Command).To(ContainElement(c.want))
			cm := typed[corev1.ConfigMap](t, rendered.ConfigMap)
			if c.typ == databasev1.PostgreSQL {
				g.Expect(cm.Data["postgresql.conf"]).NotTo(MatchRegexp(`(?m)^synchronous_standby_names`))
				return
			}
			g.Expect(cm.Data["my.cnf"]).To(ContainSubstring("plugin_load_add = semisync_source.so\nplugin_load_add = semisync_replica.so\n"))
			g.Expect(cm.Data["my.cnf"]).To(ContainSubstring("loose_rpl_semi_sync_source_enabled = OFF\n"))
		})
	}
}

// TestAgentPods: the pods run under the agent with their own identity,
// which may read and annotate the Database's pods by name and nothing else,
// and the operator rolls them (OnDelete), for both engines.
func TestAgentPods(t *testing.T) {
	g := NewWithT(t)
	c := mustRender(t, newDatabase(databasev1.PostgreSQL, "16", func(d *databasev1.Database) { d.Spec.Replicas = ptr(int32(3)) }))
	sts := typed[appsv1.StatefulSet](t, c.StatefulSet)
	pod := sts.Spec.Template.Spec
	g.Expect(sts.Spec.UpdateStrategy.Type).To(Equal(appsv1.OnDeleteStatefulSetStrategyType))
	g.Expect(pod.ServiceAccountName).To(Equal("orders-instance"))
	g.Expect(*pod.AutomountServiceAccountToken).To(BeFalse(), "the token is mounted in the database container only")
	main := containerNamed(g, pod.Containers, "database")
	g.Expect(main.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "agent-token", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}))
	for _, ctr := range append(pod.InitContainers, pod.Containers...) {
		if ctr.Name != "database" {
			for _, m := range ctr.VolumeMounts {
				g.Expect(m.Name).NotTo(Equal("agent-token"), "container %s", ctr.Name)
			}
		}
	}
	g.Expect(strings.Join(main.Command, " ")).To(ContainSubstring("--upstream=orders.shop.svc:5432"))

	role := typed[rbacv1.Role](t, c.Role)
	g.Expect(role.Rules).To(HaveLen(1))
	g.Expect(role.Rules[0].Resources).To(Equal([]string{"pods"}))
	g.Expect(role.Rules[0].Verbs).To(ConsistOf("get", "watch", "patch"))
	g.Expect(role.Rules[0].ResourceNames).To(HaveLen(10), "every pod a Database can have, so scaling never changes the Role")
	g.Expect(role.Rules[0].ResourceNames).To(ContainElements("orders-0", "orders-9"))
	binding := typed[rbacv1.RoleBinding](t, c.RoleBinding)
	g.Expect(binding.Subjects).To(ConsistOf(rbacv1.Subject{Kind: "ServiceAccount", Name: "orders-instance", Namespace: "shop"}))
	g.Expect(binding.RoleRef.Name).To(Equal(role.Name))

	my := mustRender(t, newDatabase(databasev1.MySQL, "8.4", func(d *databasev1.Database) { d.Spec.Replicas = ptr(int32(3)) }))
	mySts := typed[appsv1.StatefulSet](t, my.StatefulSet)
	g.Expect(mySts.Spec.UpdateStrategy.Type).To(Equal(appsv1.OnDeleteStatefulSetStrategyType))
	g.Expect(mySts.Spec.Template.Spec.ServiceAccountName).To(Equal("orders-instance"))
	g.Expect(strings.Join(containerNamed(g, mySts.Spec.Template.Spec.Containers, "database").Command, " ")).
		To(ContainSubstring("--upstream=orders.shop.svc:3306"))
	g.Expect(my.ServiceAccount).NotTo(BeNil())
	g.Expect(render.RunsUnderAgent(newDatabase(databasev1.MySQL, "8.4"))).To(BeTrue())
	g.Expect(render.RunsUnderAgent(newDatabase(databasev1.PostgreSQL, "16"))).To(BeTrue())
}

// TestKeepPods: the StatefulSet keeps the primary's pod through a
// scale-down until the operator has switched over.
func TestKeepPods(t *testing.T) {
	g := NewWithT(t)
	db := newDatabase(databasev1.PostgreSQL, "16", func(d *databasev1.Database) { d.Spec.Replicas = ptr(int32(1)) })
	c, err := render.RenderObserved(db, render.DefaultOptions(), render.Observed{KeepPods: 3})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*typed[appsv1.StatefulSet](t, c.StatefulSet).Spec.Replicas).To(Equal(int32(3)))
	c, err = render.RenderObserved(db, render.DefaultOptions(), render.Observed{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*typed[appsv1.StatefulSet](t, c.StatefulSet).Spec.Replicas).To(Equal(int32(1)))
}
