package render

import (
	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// engine holds everything that differs between MySQL and PostgreSQL, so the
// child builders never switch on the Database's type. One implementation per
// engine: mysql.go and postgres.go.
type engine interface {
	// defaultImage is the official image for a version.
	defaultImage(version string) string
	// port is the engine's TCP port; portName names it on pods and Services.
	port() int32
	portName() string
	// dataPath is where the data volume is mounted.
	dataPath() string
	// initialisation is how the database container starts the image's
	// entrypoint, and how it tells and empties an initialised data
	// directory (initialise.go).
	initialisation(s *spec) initialisation
	// env of the database container; secrets only through secretKeyRef.
	env(s *spec) []*corev1ac.EnvVarApplyConfiguration
	// configFiles is the ConfigMap's data: configuration and init scripts.
	configFiles(s *spec) map[string]string
	// configMounts says where ConfigMap keys appear in the database container.
	configMounts() []configMount
	// probe is the exec command of the liveness and startup probes: the
	// server answers.
	probe() []string
	// readinessProbe is the exec command of the readiness probe: the pod
	// may serve (a replica must be replicating).
	readinessProbe() []string
	// initContainers run before the database container (replica bootstrap).
	initContainers(s *spec) []*corev1ac.ContainerApplyConfiguration
	// agent is how the server runs under the agent (agent.go); nil while
	// the engine runs without one: pod 0 is then the primary for ever.
	agent(s *spec) *agentRun
	// restore is the engine's part of the restore script (restore.go).
	restore() restoreSteps
	// backupScript dumps the application database into /backup and applies
	// retention; backupEnv is its environment.
	backupScript(s *spec) string
	backupEnv(s *spec) []*corev1ac.EnvVarApplyConfiguration
	// exporter is the Prometheus exporter sidecar, serving on metricsPort.
	exporter(s *spec) *corev1ac.ContainerApplyConfiguration
	// exporterVolumes are pod volumes only the exporter uses (none for most
	// specs).
	exporterVolumes(s *spec) []*corev1ac.VolumeApplyConfiguration
	metricsPort() int32
}

// configMount mounts some keys of the ConfigMap as files in one directory.
type configMount struct {
	volume    string
	mountPath string
	// items maps ConfigMap keys to file names under mountPath.
	items map[string]string
}

const (
	// runAsID is the uid and gid of the official images' database user.
	runAsID int64 = 999
	// backupMountPath is where the backup volume is mounted in backup jobs.
	backupMountPath = "/backup"
	// initdbMountPath holds the scripts the official images' entrypoints
	// run once, while they initialise an empty data directory.
	initdbMountPath = "/docker-entrypoint-initdb.d"
	metricsPortName = "metrics"
)

func secretEnv(s *spec, name, key string) *corev1ac.EnvVarApplyConfiguration {
	return corev1ac.EnvVar().WithName(name).WithValueFrom(
		corev1ac.EnvVarSource().WithSecretKeyRef(
			corev1ac.SecretKeySelector().WithName(CredentialsSecretName(s.name)).WithKey(key)))
}

func valueEnv(name, value string) *corev1ac.EnvVarApplyConfiguration {
	return corev1ac.EnvVar().WithName(name).WithValue(value)
}

func podNameEnv() *corev1ac.EnvVarApplyConfiguration {
	return corev1ac.EnvVar().WithName("POD_NAME").WithValueFrom(
		corev1ac.EnvVarSource().WithFieldRef(corev1ac.ObjectFieldSelector().WithFieldPath("metadata.name")))
}

// containerSecurityContext is the restricted Pod Security profile for a container.
func containerSecurityContext() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().
		WithRunAsNonRoot(true).
		WithRunAsUser(runAsID).
		WithRunAsGroup(runAsID).
		WithAllowPrivilegeEscalation(false).
		WithCapabilities(corev1ac.Capabilities().WithDrop(corev1.Capability("ALL"))).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

// podSecurityContext runs every container as the images' database user and
// makes mounted volumes writable for it.
func podSecurityContext() *corev1ac.PodSecurityContextApplyConfiguration {
	return corev1ac.PodSecurityContext().
		WithRunAsNonRoot(true).
		WithRunAsUser(runAsID).
		WithRunAsGroup(runAsID).
		WithFSGroup(runAsID).
		WithFSGroupChangePolicy(corev1.FSGroupChangeOnRootMismatch).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

// execProbe builds a probe that runs cmd in the container.
func execProbe(cmd []string, period, timeout, failures int32) *corev1ac.ProbeApplyConfiguration {
	return corev1ac.Probe().
		WithExec(corev1ac.ExecAction().WithCommand(cmd...)).
		WithPeriodSeconds(period).
		WithTimeoutSeconds(timeout).
		WithFailureThreshold(failures)
}
