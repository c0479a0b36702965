package render

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
)

// configVolumeMode makes mounted configuration and scripts read-only; the
// images source init scripts, so they need no execute bit.
const configVolumeMode int32 = 0o444

// buildStatefulSet renders the StatefulSet <db>. Nothing in the pod template
// depends on the replica count, so scaling never restarts running pods.
func buildStatefulSet(s *spec, configChecksum string) *appsv1ac.StatefulSetApplyConfiguration {
	return appsv1ac.StatefulSet(StatefulSetName(s.name), s.namespace).
		WithLabels(labels(s.db, "database")).
		WithOwnerReferences(ownerReference(s.db)).
		WithSpec(appsv1ac.StatefulSetSpec().
			WithReplicas(s.podCount()).
			WithServiceName(HeadlessServiceName(s.name)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(s.name))).
			// Replicas copy pod 0, so pod 0 must be ready before pod 1 starts.
			WithPodManagementPolicy(appsv1.OrderedReadyPodManagement).
			WithUpdateStrategy(updateStrategy(s)).
			// Data outlives the StatefulSet and scale-downs: the operator never
			// deletes a data volume.
			WithPersistentVolumeClaimRetentionPolicy(appsv1ac.StatefulSetPersistentVolumeClaimRetentionPolicy().
				WithWhenDeleted(appsv1.RetainPersistentVolumeClaimRetentionPolicyType).
				WithWhenScaled(appsv1.RetainPersistentVolumeClaimRetentionPolicyType)).
			WithTemplate(podTemplate(s, configChecksum)).
			WithVolumeClaimTemplates(dataClaimTemplate(s)))
}

// updateStrategy: under the agent the operator restarts the pods itself,
// the primary last, after one switchover (reconcile/rollout.go); without
// it the StatefulSet controller rolls them from the highest ordinal down,
// which leaves pod 0, the primary for ever, for last.
func updateStrategy(s *spec) *appsv1ac.StatefulSetUpdateStrategyApplyConfiguration {
	if s.eng.agent(s) != nil {
		return appsv1ac.StatefulSetUpdateStrategy().WithType(appsv1.OnDeleteStatefulSetStrategyType)
	}
	return appsv1ac.StatefulSetUpdateStrategy().WithType(appsv1.RollingUpdateStatefulSetStrategyType)
}

func dataClaimTemplate(s *spec) *corev1ac.PersistentVolumeClaimApplyConfiguration {
	pvc := &corev1ac.PersistentVolumeClaimApplyConfiguration{}
	pvc.WithAPIVersion("v1").WithKind("PersistentVolumeClaim").
		WithName(dataVolumeName).
		WithLabels(SelectorLabels(s.name)).
		WithSpec(volumeClaimSpec(s, s.db.Spec.Storage.Size))
	return pvc
}

// volumeClaimSpec asks for a ReadWriteOnce filesystem volume. An empty class
// is left unset, so the cluster's default StorageClass applies.
func volumeClaimSpec(s *spec, size resource.Quantity) *corev1ac.PersistentVolumeClaimSpecApplyConfiguration {
	spec := corev1ac.PersistentVolumeClaimSpec().
		WithAccessModes(corev1.ReadWriteOnce).
		WithVolumeMode(corev1.PersistentVolumeFilesystem).
		WithResources(corev1ac.VolumeResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceStorage: size}))
	if class := s.db.Spec.Storage.Class; class != "" {
		spec.WithStorageClassName(class)
	}
	return spec
}

func podTemplate(s *spec, configChecksum string) *corev1ac.PodTemplateSpecApplyConfiguration {
	pod := corev1ac.PodSpec().
		WithAutomountServiceAccountToken(false).
		WithEnableServiceLinks(false).
		WithTerminationGracePeriodSeconds(s.profile.terminationGracePeriod).
		WithSecurityContext(podSecurityContext()).
		WithAffinity(spreadAcrossNodes(s))
	if s.eng.agent(s) != nil {
		// Replicas find a new primary by the name of <db>: with one of the
		// cluster's DNS servers gone with a lost node, each query sent to it
		// would wait the resolver's default 5 s before the next try.
		pod.WithDNSConfig(corev1ac.PodDNSConfig().WithOptions(
			corev1ac.PodDNSConfigOption().WithName("timeout").WithValue("1"),
			corev1ac.PodDNSConfigOption().WithName("attempts").WithValue("3")))
		pod.WithServiceAccountName(InstanceServiceAccountName(s.name)).
			WithInitContainers(agentInitContainer(s)).
			WithVolumes(agentVolumes()...)
	}
	pod.WithInitContainers(s.eng.initContainers(s)...).
		WithContainers(databaseContainer(s)).
		WithVolumes(configVolumes(s)...).
		WithVolumes(sharedMemoryVolume(s)).
		WithVolumes(archiveVolumes(s)...)
	if s.restoresDump() {
		pod.WithVolumes(restoreVolume(s))
	}
	if s.pointInTime() != nil && !s.restoresMySQLArchive() {
		pod.WithInitContainers(restoreInitContainer(s))
	}
	if s.tlsSecret != "" {
		pod.WithVolumes(tlsVolume(s))
	}
	if s.metrics {
		pod.WithContainers(s.eng.exporter(s)).WithVolumes(s.eng.exporterVolumes(s)...)
	}
	annotations := map[string]string{ConfigChecksumAnnotation: configChecksum}
	if s.tlsCertificate != "" {
		annotations[TLSCertificateAnnotation] = s.tlsCertificate
	}
	podLabels := labels(s.db, "database")
	if s.restore != nil {
		podLabels[LabelRestoring] = "true"
	}
	return corev1ac.PodTemplateSpec().
		WithLabels(podLabels).
		WithAnnotations(annotations).
		WithSpec(pod)
}

// whileInitialising makes the startup and liveness probes pass while the
// data directory is being initialised (the marker exists, initialise.go),
// and, under the agent, while the agent prepares or starts the server (a
// replica's copy of the primary, a former primary's rewind): the image's
// temporary server listens on the local socket only, and no server runs
// while the agent prepares, so the probe's TCP check fails for as long as
// a restore's load or a copy takes, and a kill by the probe would only
// start it again from scratch, for ever. Readiness still checks the
// server, so the pod serves nothing meanwhile. The probe's words need no
// quoting.
func whileInitialising(s *spec, probe []string) []string {
	test := "[ -e " + s.eng.initialisation(s).marker + " ]"
	if s.eng.agent(s) != nil {
		test += " || [ -e " + agentStartingFile + " ]"
	}
	return []string{"bash", "-c", test + " || exec " + strings.Join(probe, " ")}
}

// sharedMemoryVolumeName is the memory-backed volume on /dev/shm.
const sharedMemoryVolumeName = "shm"

// sharedMemoryVolume replaces the container runtime's 64 MiB /dev/shm:
// PostgreSQL keeps parallel queries' shared state (a parallel hash join's
// hash table, up to work_mem x hash_mem_multiplier per process) in dynamic
// shared memory there. Its pages count against the pod's memory, so the
// container's memory limit is the only bound that means anything; without a
// limit the kubelet bounds it by the node's memory.
func sharedMemoryVolume(s *spec) *corev1ac.VolumeApplyConfiguration {
	dir := corev1ac.EmptyDirVolumeSource().WithMedium(corev1.StorageMediumMemory)
	if limit, ok := s.limits[corev1.ResourceMemory]; ok {
		dir.WithSizeLimit(limit)
	}
	return corev1ac.Volume().WithName(sharedMemoryVolumeName).WithEmptyDir(dir)
}

// spreadAcrossNodes prefers one pod per node, so a node failure takes at most
// one replica. It is a preference, not a rule: a one-node cluster still runs.
func spreadAcrossNodes(s *spec) *corev1ac.AffinityApplyConfiguration {
	return corev1ac.Affinity().WithPodAntiAffinity(corev1ac.PodAntiAffinity().
		WithPreferredDuringSchedulingIgnoredDuringExecution(corev1ac.WeightedPodAffinityTerm().
			WithWeight(100).
			WithPodAffinityTerm(corev1ac.PodAffinityTerm().
				WithTopologyKey(corev1.LabelHostname).
				WithLabelSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(s.name))))))
}

func databaseContainer(s *spec) *corev1ac.ContainerApplyConfiguration {
	probe := s.eng.probe()
	c := corev1ac.Container().
		WithName(DatabaseContainerName).
		WithImage(s.image).
		WithImagePullPolicy(corev1.PullIfNotPresent).
		WithPorts(corev1ac.ContainerPort().WithName(s.eng.portName()).WithContainerPort(s.eng.port()).WithProtocol(corev1.ProtocolTCP)).
		WithEnv(s.eng.env(s)...).
		WithResources(s.resourceRequirements()).
		WithSecurityContext(containerSecurityContext()).
		// A fresh data directory (initdb, or a copy of the primary) may take
		// minutes; liveness starts only after the startup probe succeeded.
		WithStartupProbe(execProbe(whileInitialising(s, probe), 10, 5, 90)).
		WithReadinessProbe(execProbe(s.eng.readinessProbe(), 10, 5, 3)).
		WithLivenessProbe(execProbe(whileInitialising(s, probe), 10, 5, 6)).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(dataVolumeName).WithMountPath(s.eng.dataPath()))
	if run := s.eng.agent(s); run != nil {
		c.WithCommand(agentCommand(s, run)...).
			WithEnv(podNamespaceEnv()).
			WithEnv(run.env...).
			WithVolumeMounts(agentVolumeMounts()...)
	} else {
		c.WithCommand("bash", "-c", initialiseScript(s.eng, s))
	}
	c.WithVolumeMounts(corev1ac.VolumeMount().WithName(sharedMemoryVolumeName).WithMountPath("/dev/shm"))
	for _, m := range configMounts(s) {
		c.WithVolumeMounts(corev1ac.VolumeMount().WithName(m.volume).WithMountPath(m.mountPath).WithReadOnly(true))
	}
	if s.restoresDump() {
		c.WithEnv(restoreEnv(s)...).WithVolumeMounts(restoreVolumeMount())
	}
	if s.restoresMySQLArchive() {
		c.WithEnv(mysqlArchiveRestoreEnv(s)...).WithVolumeMounts(restoreCAMounts(s)...)
	}
	if ArchivingOf(s.db) != nil {
		c.WithEnv(archiveEnv(s)...).WithVolumeMounts(archiveCAMounts(s)...)
	}
	if s.tlsSecret != "" {
		c.WithVolumeMounts(tlsVolumeMount())
	}
	return c
}

func configVolumes(s *spec) []*corev1ac.VolumeApplyConfiguration {
	var volumes []*corev1ac.VolumeApplyConfiguration
	for _, m := range configMounts(s) {
		cm := corev1ac.ConfigMapVolumeSource().
			WithName(ConfigMapName(s.name)).
			WithDefaultMode(configVolumeMode)
		for _, key := range sortedKeys(m.items) {
			cm.WithItems(corev1ac.KeyToPath().WithKey(key).WithPath(m.items[key]))
		}
		volumes = append(volumes, corev1ac.Volume().WithName(m.volume).WithConfigMap(cm))
	}
	return volumes
}

// exporterContainer is the metrics sidecar common to both engines; the
// engine adds how it connects.
func exporterContainer(s *spec, image string, port int32) *corev1ac.ContainerApplyConfiguration {
	return corev1ac.Container().
		WithName("exporter").
		WithImage(image).
		WithImagePullPolicy(corev1.PullIfNotPresent).
		WithPorts(corev1ac.ContainerPort().WithName(metricsPortName).WithContainerPort(port).WithProtocol(corev1.ProtocolTCP)).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")}).
			WithLimits(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("128Mi")})).
		WithSecurityContext(containerSecurityContext().WithReadOnlyRootFilesystem(true))
}

// DatabaseContainerName names the engine's container in the database pods.
const DatabaseContainerName = "database"
