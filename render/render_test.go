package render_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

// engineFacts are what each engine must look like in the rendered pods.
type engineFacts struct {
	version, port, portName, dataPath string
	probe, readiness                  string
	passwordEnv                       []string
}

var facts = map[databasev1.DatabaseType]engineFacts{
	databasev1.PostgreSQL: {
		version: "16", port: "5432", portName: "postgresql", dataPath: "/var/lib/postgresql/data",
		probe:       "pg_isready",
		readiness:   "pg_isready",
		passwordEnv: []string{"POSTGRES_PASSWORD", "APP_PASSWORD", "REPLICATION_PASSWORD"},
	},
	databasev1.MySQL: {
		version: "8.0", port: "3306", portName: "mysql", dataPath: "/var/lib/mysql",
		probe:       "mysqladmin ping",
		readiness:   "SHOW REPLICA STATUS",
		passwordEnv: []string{"MYSQL_ROOT_PASSWORD", "MYSQL_PASSWORD", "REPLICATION_PASSWORD"},
	},
}

var profiles = map[databasev1.Environment][4]string{
	databasev1.Development: {"100m", "256Mi", "500m", "512Mi"},
	databasev1.Staging:     {"200m", "512Mi", "1000m", "1Gi"},
	databasev1.Production:  {"500m", "1Gi", "2000m", "4Gi"},
}

// TestRenderMatrix renders both engines × three environments × backup and
// monitoring on and off × replicas 1 and 3, and checks the object contract on
// each.
func TestRenderMatrix(t *testing.T) {
	for _, typ := range []databasev1.DatabaseType{databasev1.PostgreSQL, databasev1.MySQL} {
		for _, env := range []databasev1.Environment{databasev1.Development, databasev1.Staging, databasev1.Production} {
			for _, withBackup := range []bool{false, true} {
				for _, withMonitoring := range []bool{false, true} {
					for _, n := range []int32{1, 3} {
						name := fmt.Sprintf("%s/%s/backup=%t/monitoring=%t/replicas=%d", typ, env, withBackup, withMonitoring, n)
						t.Run(name, func(t *testing.T) {
							db := newDatabase(typ, facts[typ].version, environment(env), backup(withBackup),
								metrics(withMonitoring), logging(withMonitoring), replicas(n))
							checkContract(t, db)
						})
					}
				}
			}
		}
	}
}

func checkContract(t *testing.T, db *databasev1.Database) {
	g := NewWithT(t)
	f := facts[db.Spec.Type]
	before := db.DeepCopy()
	c, err := render.Render(db, render.DefaultOptions())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(equality.Semantic.DeepEqual(before, db)).To(BeTrue(), "render must not modify the Database")

	n := *db.Spec.Replicas
	selector := render.SelectorLabels(db.Name)
	g.Expect(selector).To(Equal(map[string]string{
		"app.kubernetes.io/name": "database", "app.kubernetes.io/instance": "orders", "app.kubernetes.io/managed-by": "database-operator",
	}))

	// StatefulSet.
	sts := typed[appsv1.StatefulSet](t, c.StatefulSet)
	g.Expect(sts.Name).To(Equal("orders"))
	g.Expect(sts.Namespace).To(Equal("shop"))
	expectControlledBy(g, sts.ObjectMeta, db)
	g.Expect(*sts.Spec.Replicas).To(Equal(n))
	g.Expect(sts.Spec.ServiceName).To(Equal("orders-headless"))
	g.Expect(sts.Spec.Selector.MatchLabels).To(Equal(selector))
	g.Expect(sts.Spec.Selector.MatchExpressions).To(BeEmpty())
	g.Expect(sts.Spec.PersistentVolumeClaimRetentionPolicy).To(Equal(&appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
	}))
	g.Expect(sts.Spec.VolumeClaimTemplates).To(HaveLen(1))
	claim := sts.Spec.VolumeClaimTemplates[0]
	g.Expect(claim.Name).To(Equal("data"))
	g.Expect(claim.Spec.Resources.Requests.Storage().String()).To(Equal("10Gi"))
	g.Expect(claim.Spec.StorageClassName).To(BeNil(), "an unset class must leave storageClassName unset")
	g.Expect(claim.Spec.AccessModes).To(ConsistOf(corev1.ReadWriteOnce))

	tpl := sts.Spec.Template
	for k, v := range selector {
		g.Expect(tpl.Labels).To(HaveKeyWithValue(k, v))
	}
	g.Expect(tpl.Labels).To(HaveKeyWithValue("database.example.com/type", string(db.Spec.Type)))
	g.Expect(tpl.Labels).To(HaveKeyWithValue("database.example.com/environment", string(db.Spec.Environment)))
	cm := typed[corev1.ConfigMap](t, c.ConfigMap)
	g.Expect(tpl.Annotations).To(HaveKey(render.ConfigChecksumAnnotation))
	g.Expect(tpl.Annotations[render.ConfigChecksumAnnotation]).To(MatchRegexp("^[0-9a-f]{64}$"))

	pod := tpl.Spec
	g.Expect(*pod.SecurityContext.RunAsNonRoot).To(BeTrue())
	g.Expect(*pod.SecurityContext.RunAsUser).To(Equal(int64(999)))
	g.Expect(*pod.SecurityContext.RunAsGroup).To(Equal(int64(999)))
	g.Expect(*pod.SecurityContext.FSGroup).To(Equal(int64(999)))
	g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	g.Expect(*pod.AutomountServiceAccountToken).To(BeFalse())
	for _, ctr := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
		sc := ctr.SecurityContext
		g.Expect(sc).NotTo(BeNil(), ctr.Name)
		g.Expect(*sc.AllowPrivilegeEscalation).To(BeFalse(), ctr.Name)
		g.Expect(sc.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")), ctr.Name)
		g.Expect(*sc.RunAsNonRoot).To(BeTrue(), ctr.Name)
		g.Expect(sc.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault), ctr.Name)
		expectSecretsOnlyByReference(g, ctr, db.Name)
	}

	main := containerNamed(g, pod.Containers, "database")
	g.Expect(main.Image).To(Equal(map[databasev1.DatabaseType]string{
		databasev1.PostgreSQL: "postgres:16", databasev1.MySQL: "mysql:8.0",
	}[db.Spec.Type]))
	g.Expect(main.Ports).To(ConsistOf(HaveField("Name", f.portName)))
	g.Expect(fmt.Sprint(main.Ports[0].ContainerPort)).To(Equal(f.port))
	g.Expect(main.VolumeMounts).To(ContainElement(And(HaveField("Name", "data"), HaveField("MountPath", f.dataPath))))
	for _, p := range []*corev1.Probe{main.LivenessProbe, main.StartupProbe} {
		g.Expect(p).NotTo(BeNil())
		g.Expect(strings.Join(p.Exec.Command, " ")).To(ContainSubstring(f.probe))
	}
	g.Expect(main.ReadinessProbe).NotTo(BeNil())
	g.Expect(strings.Join(main.ReadinessProbe.Exec.Command, " ")).To(ContainSubstring(f.readiness))
	env := envByName(main)
	for _, name := range f.passwordEnv {
		g.Expect(env).To(HaveKey(name))
		g.Expect(env[name].ValueFrom.SecretKeyRef.Name).To(Equal("orders-credentials"), name)
	}
	p := profiles[db.Spec.Environment]
	g.Expect(main.Resources.Requests.Cpu().Cmp(resource.MustParse(p[0]))).To(Equal(0))
	g.Expect(main.Resources.Requests.Memory().Cmp(resource.MustParse(p[1]))).To(Equal(0))
	g.Expect(main.Resources.Limits.Cpu().Cmp(resource.MustParse(p[2]))).To(Equal(0))
	g.Expect(main.Resources.Limits.Memory().Cmp(resource.MustParse(p[3]))).To(Equal(0))

	monitoringOn := db.Spec.Monitoring.Enabled && db.Spec.Monitoring.Metrics
	if monitoringOn {
		exporter := containerNamed(g, pod.Containers, "exporter")
		g.Expect(exporter.Ports).To(ConsistOf(HaveField("Name", "metrics")))
		g.Expect(*exporter.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
	} else {
		g.Expect(pod.Containers).To(HaveLen(1))
	}

	// Engine specifics.
	switch db.Spec.Type {
	case databasev1.PostgreSQL:
		g.Expect(env["PGDATA"].Value).To(Equal("/var/lib/postgresql/data/pgdata"), "PGDATA is a subdirectory of the volume")
		g.Expect(main.Command[:2]).To(Equal([]string{"/opt/database-operator/database-agent", "run"}), "the agent runs the server")
		server := main.Command[slices.Index(main.Command, "--")+1:]
		g.Expect(server[:2]).To(Equal([]string{"bash", "-c"}))
		g.Expect(server[2]).To(HaveSuffix("exec docker-entrypoint.sh postgres -c config_file=/etc/postgresql/postgresql.conf\n"),
			"the wrapper hands over to the image's entrypoint")
		g.Expect(main.VolumeMounts).To(ContainElement(HaveField("MountPath", "/etc/postgresql")))
		g.Expect(main.VolumeMounts).To(ContainElement(HaveField("MountPath", "/docker-entrypoint-initdb.d")))
		g.Expect(pod.InitContainers).To(ConsistOf(HaveField("Name", "agent")), "the agent is copied in; the replica copy is the agent's prepare step")
		g.Expect(pod.ServiceAccountName).To(Equal("orders-instance"))
		prepare := strings.Join(main.Command, " ")
		g.Expect(prepare).To(ContainSubstring("pg_basebackup"))
		g.Expect(prepare).To(ContainSubstring("pg_rewind"), "a former primary rejoins by rewinding")
		g.Expect(prepare).To(ContainSubstring(`touch "$partial/standby.signal"`), "the copy starts as a standby")
		g.Expect(prepare).To(ContainSubstring("set_auto_conf primary_conninfo "), "written by the script, from the spec")
		g.Expect(env["PRIMARY_HOST"].Value).To(Equal("orders.shop.svc"), "the read-write Service, which follows the primary; a name the certificate carries")
		g.Expect(c.ServiceAccount).NotTo(BeNil())
		g.Expect(c.Role).NotTo(BeNil())
		g.Expect(c.RoleBinding).NotTo(BeNil())
		conf := cm.Data["postgresql.conf"]
		g.Expect(conf).To(ContainSubstring("wal_level = replica"))
		g.Expect(conf).To(ContainSubstring("hot_standby = on"))
		g.Expect(conf).To(ContainSubstring("wal_log_hints = on"), "pg_rewind needs it")
		g.Expect(conf).To(ContainSubstring("hba_file = '/etc/postgresql/pg_hba.conf'"))
		g.Expect(cm.Data["pg_hba.conf"]).To(MatchRegexp(`host\s+replication\s+replicator\s+all\s+scram-sha-256`))
		if db.Spec.Monitoring.Enabled && db.Spec.Monitoring.Logging {
			g.Expect(conf).To(ContainSubstring("log_min_duration_statement = '250ms'"))
		} else {
			g.Expect(conf).To(ContainSubstring("log_min_duration_statement = -1"))
		}
	case databasev1.MySQL:
		g.Expect(main.VolumeMounts).To(ContainElement(HaveField("MountPath", "/etc/mysql/conf.d")))
		cmd := strings.Join(main.Command, " ")
		g.Expect(cmd).To(ContainSubstring(`--server-id="$((ordinal + 1))"`))
		g.Expect(cmd).To(ContainSubstring("--engine=mysql"))
		g.Expect(cmd).To(ContainSubstring("--super-read-only=ON"), "an initialised server starts fenced")
		g.Expect(cmd).To(ContainSubstring("GTID_SUBTRACT"), "a former primary with transactions the primary lacks is copied again")
		g.Expect(cmd).To(ContainSubstring("SOURCE_AUTO_POSITION=1"), "an existing data directory is re-pointed at the Service")
		g.Expect(env["PRIMARY_HOST"].Value).To(Equal("orders.shop.svc"), "the read-write Service, which follows the primary; a name the certificate carries")
		g.Expect(pod.ServiceAccountName).To(Equal("orders-instance"))
		conf := cm.Data["my.cnf"]
		g.Expect(conf).To(ContainSubstring("gtid_mode = ON"))
		g.Expect(conf).To(ContainSubstring("enforce_gtid_consistency = ON"))
		g.Expect(cm.Data["initdb-replication.sh"]).To(ContainSubstring("CHANGE REPLICATION SOURCE TO SOURCE_HOST='${PRIMARY_HOST}'"))
		if db.Spec.Monitoring.Enabled && db.Spec.Monitoring.Logging {
			g.Expect(conf).To(ContainSubstring("slow_query_log = ON"))
			g.Expect(conf).To(ContainSubstring("slow_query_log_file = /dev/stderr"))
		} else {
			g.Expect(conf).To(ContainSubstring("slow_query_log = OFF"))
		}
	}

	// Services.
	headless := typed[corev1.Service](t, c.HeadlessService)
	g.Expect(headless.Name).To(Equal("orders-headless"))
	g.Expect(headless.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
	g.Expect(headless.Spec.PublishNotReadyAddresses).To(BeTrue())
	g.Expect(headless.Spec.Selector).To(Equal(selector))
	primary := typed[corev1.Service](t, c.Service)
	g.Expect(primary.Name).To(Equal("orders"))
	g.Expect(primary.Spec.Selector).To(Equal(map[string]string{
		"app.kubernetes.io/name": "database", "app.kubernetes.io/instance": "orders", "app.kubernetes.io/managed-by": "database-operator",
		"database.example.com/role": "primary",
	}), "the pod the operator labels primary")
	g.Expect(primary.Spec.PublishNotReadyAddresses).To(BeTrue(), "the operator, not the readiness probe, routes writes")
	services := []*corev1.Service{headless, primary}
	if n > 1 {
		g.Expect(c.ReadService).NotTo(BeNil())
		ro := typed[corev1.Service](t, c.ReadService)
		g.Expect(ro.Name).To(Equal("orders-ro"))
		g.Expect(ro.Spec.Selector).To(Equal(selector))
		services = append(services, ro)
	} else {
		g.Expect(c.ReadService).To(BeNil())
	}
	for _, svc := range services {
		expectControlledBy(g, svc.ObjectMeta, db)
		g.Expect(svc.Spec.Ports).To(ContainElement(And(HaveField("Name", f.portName), HaveField("TargetPort.StrVal", f.portName))))
		if monitoringOn {
			g.Expect(svc.Spec.Ports).To(ContainElement(HaveField("Name", "metrics")), svc.Name)
		} else {
			g.Expect(svc.Spec.Ports).To(HaveLen(1), svc.Name)
		}
	}

	// ConfigMap.
	g.Expect(cm.Name).To(Equal("orders-config"))
	expectControlledBy(g, cm.ObjectMeta, db)

	// PodDisruptionBudget.
	if n > 1 {
		pdb := typed[policyv1.PodDisruptionBudget](t, c.PodDisruptionBudget)
		g.Expect(pdb.Name).To(Equal("orders"))
		expectControlledBy(g, pdb.ObjectMeta, db)
		g.Expect(pdb.Spec.MaxUnavailable.IntValue()).To(Equal(1))
		g.Expect(pdb.Spec.Selector.MatchLabels).To(Equal(selector))
	} else {
		g.Expect(c.PodDisruptionBudget).To(BeNil())
	}

	// Backup.
	if db.Spec.Backup.Enabled {
		cj := typed[batchv1.CronJob](t, c.BackupCronJob)
		g.Expect(cj.Name).To(Equal("orders-backup"))
		expectControlledBy(g, cj.ObjectMeta, db)
		g.Expect(cj.Spec.Schedule).To(Equal("0 2 * * *"))
		g.Expect(cj.Spec.ConcurrencyPolicy).To(Equal(batchv1.ForbidConcurrent))
		jobPod := cj.Spec.JobTemplate.Spec.Template
		g.Expect(jobPod.Labels).NotTo(HaveKeyWithValue("app.kubernetes.io/name", "database"),
			"backup pods must not match the database pods' selector")
		g.Expect(jobPod.Spec.Volumes).To(ContainElement(HaveField("PersistentVolumeClaim.ClaimName", "orders-backup")))
		job := containerNamed(g, jobPod.Spec.Containers, "backup")
		g.Expect(job.Image).To(Equal(main.Image), "the dump tool matches the server version")
		script := strings.Join(job.Command, " ")
		g.Expect(script).To(ContainSubstring(map[databasev1.DatabaseType]string{
			databasev1.PostgreSQL: "pg_dump ", databasev1.MySQL: "mysqldump ",
		}[db.Spec.Type]))
		g.Expect(script).To(ContainSubstring(`gzip -c >"$partial"`))
		g.Expect(script).To(ContainSubstring(`[ "$f" = "$file" ]; then
    continue`), "retention never deletes the newest dump, the one just written")
		g.Expect(envByName(job)["RETENTION_DAYS"].Value).To(Equal("7"))
		expectSecretsOnlyByReference(g, job, db.Name)

		pvc := typed[corev1.PersistentVolumeClaim](t, c.BackupPVC)
		g.Expect(pvc.Name).To(Equal("orders-backup"))
		g.Expect(pvc.OwnerReferences).To(BeEmpty(), "backups outlive the Database")
		g.Expect(pvc.Spec.Resources.Requests.Storage().String()).To(Equal("10Gi"))
	} else {
		g.Expect(c.BackupCronJob).To(BeNil())
		g.Expect(c.BackupPVC).To(BeNil())
	}

	// Autoscaler: only with spec.autoscaling, which the matrix never sets.
	g.Expect(c.HorizontalPodAutoscaler).To(BeNil())

	// NetworkPolicy: without spec.networkPolicy, on in production only; the
	// metrics port is open only with metrics on.
	if db.Spec.Environment == databasev1.Production {
		np := typed[networkingv1.NetworkPolicy](t, c.NetworkPolicy)
		g.Expect(np.Name).To(Equal("orders"))
		expectControlledBy(g, np.ObjectMeta, db)
		g.Expect(np.Spec.PodSelector.MatchLabels).To(Equal(selector))
		g.Expect(np.Spec.Ingress[0].Ports).To(ConsistOf(HaveField("Port.String()", f.port)))
		if monitoringOn {
			g.Expect(np.Spec.Ingress).To(HaveLen(2))
		} else {
			g.Expect(np.Spec.Ingress).To(HaveLen(1))
		}
	} else {
		g.Expect(c.NetworkPolicy).To(BeNil())
	}

	// ServiceMonitor.
	if monitoringOn {
		g.Expect(c.ServiceMonitor).NotTo(BeNil())
		g.Expect(c.ServiceMonitor.GetKind()).To(Equal("ServiceMonitor"))
		g.Expect(c.ServiceMonitor.GetAPIVersion()).To(Equal("monitoring.coreos.com/v1"))
		g.Expect(c.ServiceMonitor.GetName()).To(Equal("orders"))
		g.Expect(c.ServiceMonitor.GetOwnerReferences()).To(HaveLen(1))
		g.Expect(*c.ServiceMonitor.GetOwnerReferences()[0].Controller).To(BeTrue())
		matchLabels := c.ServiceMonitor.Object["spec"].(map[string]any)["selector"].(map[string]any)["matchLabels"].(map[string]any)
		g.Expect(matchLabels).To(HaveKeyWithValue("database.example.com/service", "headless"))
		g.Expect(headless.Labels).To(HaveKeyWithValue("database.example.com/service", "headless"))
		g.Expect(primary.Labels).NotTo(HaveKeyWithValue("database.example.com/service", "headless"))
	} else {
		g.Expect(c.ServiceMonitor).To(BeNil())
	}
}

// expectControlledBy checks the single controller owner reference to db.
func expectControlledBy(g Gomega, meta metav1.ObjectMeta, db *databasev1.Database) {
	g.ExpectWithOffset(1, meta.OwnerReferences).To(HaveLen(1), meta.Name)
	ref := meta.OwnerReferences[0]
	g.ExpectWithOffset(1, ref.APIVersion).To(Equal("database.example.com/v1"))
	g.ExpectWithOffset(1, ref.Kind).To(Equal("Database"))
	g.ExpectWithOffset(1, ref.Name).To(Equal(db.Name))
	g.ExpectWithOffset(1, ref.UID).To(Equal(db.UID))
	g.ExpectWithOffset(1, *ref.Controller).To(BeTrue())
	g.ExpectWithOffset(1, *ref.BlockOwnerDeletion).To(BeTrue())
}

// expectSecretsOnlyByReference fails on a password-like variable with a
// literal value, or a secret reference to anything but the credentials Secret.
func expectSecretsOnlyByReference(g Gomega, c corev1.Container, db string) {
	for _, e := range c.Env {
		upper := strings.ToUpper(e.Name)
		if strings.Contains(upper, "PASS") || strings.Contains(upper, "PWD") {
			g.ExpectWithOffset(1, e.Value).To(BeEmpty(), "%s/%s has a literal secret", c.Name, e.Name)
			g.ExpectWithOffset(1, e.ValueFrom).NotTo(BeNil(), "%s/%s", c.Name, e.Name)
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			g.ExpectWithOffset(1, e.ValueFrom.SecretKeyRef.Name).To(Equal(db+"-credentials"), "%s/%s", c.Name, e.Name)
		}
	}
}
