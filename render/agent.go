package render

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/instance"
)

// The agent (package agent) runs each database server as PID 1 of the
// database container: it starts the server in the role the operator gives
// the pod (instance.LabelRole), promotes or demotes it when the role moves,
// restarts it when it crashes and reports it in the pod's
// instance.AnnotationReport. Its binary comes from the operator's image:
// the init container copies it onto a volume the database container shares
// (under /opt: the operator's image has its binary at /database-operator).
const (
	agentVolumeName = "agent"
	agentMountPath  = "/opt/database-operator"
	agentBinary     = agentMountPath + "/database-agent"
	// agentStartingFile exists while the agent prepares or starts the
	// server: the startup and liveness probes pass meanwhile.
	agentStartingFile = agentMountPath + "/starting"
	// agentRoleFile holds the pod's role as the agent last read it; a
	// prepare script waiting for a primary stops once it changes.
	agentRoleFile = agentMountPath + "/role"
	// agentTokenVolumeName holds the pod's ServiceAccount token, CA and
	// namespace, mounted in the database container only.
	agentTokenVolumeName = "agent-token"
	serviceAccountPath   = "/var/run/secrets/kubernetes.io/serviceaccount"
	// agentTokenSeconds is the token's lifetime; the kubelet renews it
	// well before, and the agent reads it again for every request.
	agentTokenSeconds int64 = 3600
)

// agentRun is how an engine's server runs under the agent.
type agentRun struct {
	// engine is the agent's --engine.
	engine string
	// stopSignal is the image's STOPSIGNAL, which stops the server cleanly.
	stopSignal string
	// prepare is the bash script run before every start of the server,
	// with ROLE set to primary or replica.
	prepare string
	// env is what prepare needs besides the database container's own.
	env []*corev1ac.EnvVarApplyConfiguration
	// flags are the engine's own flags of the agent.
	flags []string
}

// agentCommand is the database container's command: the agent, which runs
// the initialisation wrapper (initialise.go) as the server.
func agentCommand(s *spec, run *agentRun) []string {
	cmd := []string{
		agentBinary, "run",
		"--engine=" + run.engine,
		"--stop-signal=" + run.stopSignal,
		"--starting-file=" + agentStartingFile,
		"--role-file=" + agentRoleFile,
		"--data-volume=" + s.eng.dataPath(),
		"--termination-log=" + corev1.TerminationMessagePathDefault,
		fmt.Sprintf("--upstream=%s:%d", PrimaryServiceHost(s.name, s.namespace), s.eng.port()),
	}
	cmd = append(cmd, run.flags...)
	return append(cmd, "--prepare="+run.prepare, "--", "bash", "-c", initialiseScript(s.eng, s))
}

// agentInitContainer copies the agent from the operator's image.
func agentInitContainer(s *spec) *corev1ac.ContainerApplyConfiguration {
	return corev1ac.Container().
		WithName("agent").
		WithImage(s.opts.AgentImage).
		WithImagePullPolicy(corev1.PullIfNotPresent).
		WithCommand("/database-agent", "copy", agentBinary).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(agentVolumeName).WithMountPath(agentMountPath)).
		WithResources(s.resourceRequirements()).
		WithSecurityContext(containerSecurityContext().WithReadOnlyRootFilesystem(true))
}

func agentVolumes() []*corev1ac.VolumeApplyConfiguration {
	return []*corev1ac.VolumeApplyConfiguration{
		corev1ac.Volume().WithName(agentVolumeName).WithEmptyDir(corev1ac.EmptyDirVolumeSource()),
		corev1ac.Volume().WithName(agentTokenVolumeName).WithProjected(corev1ac.ProjectedVolumeSource().
			WithDefaultMode(0o444).
			WithSources(
				corev1ac.VolumeProjection().WithServiceAccountToken(corev1ac.ServiceAccountTokenProjection().
					WithPath("token").WithExpirationSeconds(agentTokenSeconds)),
				corev1ac.VolumeProjection().WithConfigMap(corev1ac.ConfigMapProjection().
					WithName("kube-root-ca.crt").
					WithItems(corev1ac.KeyToPath().WithKey("ca.crt").WithPath("ca.crt"))),
				corev1ac.VolumeProjection().WithDownwardAPI(corev1ac.DownwardAPIProjection().
					WithItems(corev1ac.DownwardAPIVolumeFile().WithPath("namespace").
						WithFieldRef(corev1ac.ObjectFieldSelector().WithFieldPath("metadata.namespace")))),
			)),
	}
}

func agentVolumeMounts() []*corev1ac.VolumeMountApplyConfiguration {
	return []*corev1ac.VolumeMountApplyConfiguration{
		corev1ac.VolumeMount().WithName(agentVolumeName).WithMountPath(agentMountPath),
		corev1ac.VolumeMount().WithName(agentTokenVolumeName).WithMountPath(serviceAccountPath).WithReadOnly(true),
	}
}

// maxPods is the most pods a Database has: the limit of spec.replicas.
const maxPods = 10

// InstanceServiceAccountName is the ServiceAccount of a Database's pods:
// the agents' identity in the Kubernetes API.
func InstanceServiceAccountName(db string) string { return db + "-instance" }

// buildServiceAccount renders the pods' ServiceAccount. Its token is
// mounted only where the agent runs (the database container).
func buildServiceAccount(s *spec) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(InstanceServiceAccountName(s.name), s.namespace).
		WithLabels(labels(s.db, "database")).
		WithOwnerReferences(ownerReference(s.db)).
		WithAutomountServiceAccountToken(false)
}

// buildRole lets each agent read, watch and annotate the Database's pods,
// by name, and nothing else: not the Database, not its Secrets. A pod
// could annotate a sibling; it cannot change a label, the role included
// (RBAC has no field-level rules, but the operator ignores reports that
// contradict what it observes of the pods themselves).
func buildRole(s *spec) *rbacv1ac.RoleApplyConfiguration {
	// Every pod the Database can ever have (spec.replicas is at most 10),
	// so scaling never changes the Role.
	names := make([]string, 0, maxPods)
	for i := 0; i < maxPods; i++ {
		names = append(names, PodName(s.name, i))
	}
	return rbacv1ac.Role(InstanceServiceAccountName(s.name), s.namespace).
		WithLabels(labels(s.db, "database")).
		WithOwnerReferences(ownerReference(s.db)).
		WithRules(rbacv1ac.PolicyRule().
			WithAPIGroups("").
			WithResources("pods").
			WithResourceNames(names...).
			WithVerbs("get", "watch", "patch"))
}

func buildRoleBinding(s *spec) *rbacv1ac.RoleBindingApplyConfiguration {
	name := InstanceServiceAccountName(s.name)
	return rbacv1ac.RoleBinding(name, s.namespace).
		WithLabels(labels(s.db, "database")).
		WithOwnerReferences(ownerReference(s.db)).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("Role").WithName(name)).
		WithSubjects(rbacv1ac.Subject().WithKind(rbacv1.ServiceAccountKind).WithName(name).WithNamespace(s.namespace))
}

// PodRole is the apply configuration of a database pod's role label, the
// only field of a pod the operator writes. The read-write Service selects
// the pod labelled primary; the pod's agent makes its server match.
func PodRole(namespace, pod string, role instance.Role) *corev1ac.PodApplyConfiguration {
	return corev1ac.Pod(pod, namespace).WithLabels(map[string]string{instance.LabelRole: string(role)})
}

// podNamespaceEnv is the pod's namespace, for the agent.
func podNamespaceEnv() *corev1ac.EnvVarApplyConfiguration {
	return corev1ac.EnvVar().WithName("POD_NAMESPACE").WithValueFrom(
		corev1ac.EnvVarSource().WithFieldRef(corev1ac.ObjectFieldSelector().WithFieldPath("metadata.namespace")))
}

// PrimaryServiceHost is the name replicas reach the current primary by:
// the read-write Service, which follows the role. It is a name the server
// certificate carries (ServerDNSNames), so replication can verify it.
func PrimaryServiceHost(db, namespace string) string {
	return fmt.Sprintf("%s.%s.svc", ServiceName(db), namespace)
}

// RunsUnderAgent says the Database's engine runs under the agent, so its
// primary role can move: both engines do. Without the agent pod 0 would be
// the primary for ever.
func RunsUnderAgent(db *databasev1.Database) bool {
	eng, err := engineFor(db)
	if err != nil {
		return false
	}
	return eng.agent(newSpec(db, eng, DefaultOptions())) != nil
}
