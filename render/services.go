package render

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/example/database-operator/instance"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// Service roles, the value of LabelServiceRole.
const (
	serviceRoleHeadless = "headless"
	serviceRolePrimary  = "primary"
	serviceRoleRead     = "read"
)

// buildHeadlessService renders <db>-headless, the StatefulSet's serviceName.
// It publishes not-ready pods too: replicas find pod 0 by its DNS name while
// they bootstrap, before anything is ready.
func buildHeadlessService(s *spec) *corev1ac.ServiceApplyConfiguration {
	return service(s, HeadlessServiceName(s.name), serviceRoleHeadless).
		WithSpec(servicePorts(s, corev1ac.ServiceSpec().
			WithClusterIP(corev1.ClusterIPNone).
			WithPublishNotReadyAddresses(true).
			WithSelector(SelectorLabels(s.name))))
}

// buildService renders <db>, the read-write endpoint: the pod the operator
// labelled primary (status.currentPrimary). It publishes the pod whether or
// not it is ready: the operator, not the readiness probe, decides where
// writes go. A primary whose server restarts after a crash is back within
// about a second, while its readiness would follow only at the next probe;
// a primary that is really gone loses the label to a replica within the
// failover delay.
func buildService(s *spec) *corev1ac.ServiceApplyConfiguration {
	selector := with(SelectorLabels(s.name), instance.LabelRole, string(instance.Primary))
	return service(s, ServiceName(s.name), serviceRolePrimary).
		WithSpec(servicePorts(s, corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithPublishNotReadyAddresses(true).
			WithSelector(selector)))
}

// buildReadService renders <db>-ro: every pod of the Database, primary
// included, for read traffic.
func buildReadService(s *spec) *corev1ac.ServiceApplyConfiguration {
	return service(s, ReadServiceName(s.name), serviceRoleRead).
		WithSpec(servicePorts(s, corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(SelectorLabels(s.name))))
}

func service(s *spec, name, role string) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(name, s.namespace).
		WithLabels(with(labels(s.db, "database"), LabelServiceRole, role)).
		WithOwnerReferences(ownerReference(s.db))
}

// servicePorts adds the engine's port and, with metrics on, the exporter's.
func servicePorts(s *spec, spec *corev1ac.ServiceSpecApplyConfiguration) *corev1ac.ServiceSpecApplyConfiguration {
	spec.WithPorts(corev1ac.ServicePort().
		WithName(s.eng.portName()).
		WithPort(s.eng.port()).
		WithTargetPort(intstr.FromString(s.eng.portName())).
		WithProtocol(corev1.ProtocolTCP))
	if s.metrics {
		spec.WithPorts(corev1ac.ServicePort().
			WithName(metricsPortName).
			WithPort(s.eng.metricsPort()).
			WithTargetPort(intstr.FromString(metricsPortName)).
			WithProtocol(corev1.ProtocolTCP))
	}
	return spec
}
