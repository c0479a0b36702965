package render

import (
	"strconv"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// Child object names, derived from the Database's name. They are part of the
// operator's contract (GUIDE.md §1): scripts and runbooks depend on them.

// StatefulSetName is the name of the Database's StatefulSet.
func StatefulSetName(db string) string { return db }

// HeadlessServiceName is the name of the headless Service that gives each pod
// a DNS name.
func HeadlessServiceName(db string) string { return db + "-headless" }

// ServiceName is the name of the read-write Service (the primary).
func ServiceName(db string) string { return db }

// ReadServiceName is the name of the read Service (every pod).
func ReadServiceName(db string) string { return db + "-ro" }

// ConfigMapName is the name of the engine configuration ConfigMap.
func ConfigMapName(db string) string { return db + "-config" }

// CredentialsSecretName is the name of the Secret holding the passwords. The
// reconciler creates it once; render only refers to it.
func CredentialsSecretName(db string) string { return db + "-credentials" }

// TLSSecretName is the name of the Secret holding the TLS certificate the
// reconciler creates, once, when spec.tls is enabled without a secretName.
func TLSSecretName(db string) string { return db + "-tls" }

// BackupName is the name of the backup CronJob and of the backup volume claim.
func BackupName(db string) string { return db + "-backup" }

// PodDisruptionBudgetName is the name of the PodDisruptionBudget.
func PodDisruptionBudgetName(db string) string { return db }

// ServiceMonitorName is the name of the ServiceMonitor.
func ServiceMonitorName(db string) string { return db }

// PrometheusRuleName is the name of the PrometheusRule holding the alerts.
func PrometheusRuleName(db string) string { return db }

// HorizontalPodAutoscalerName is the name of the HorizontalPodAutoscaler.
func HorizontalPodAutoscalerName(db string) string { return db }

// NetworkPolicyName is the name of the NetworkPolicy.
func NetworkPolicyName(db string) string { return db }

// PodName is the name of the pod with the given StatefulSet ordinal.
func PodName(db string, ordinal int) string { return db + "-" + strconv.Itoa(ordinal) }

// dataVolumeName is the StatefulSet's volume claim template; the PVCs are
// named data-<db>-<ordinal>.
const dataVolumeName = "data"

// Keys of the credentials Secret. A user may create the Secret beforehand
// with their own values; render only refers to these keys.
const (
	// SecretKeyRootPassword is the password of the engine's superuser
	// (MySQL root, PostgreSQL postgres).
	SecretKeyRootPassword = "root-password"
	// SecretKeyUsername is the application user's name.
	SecretKeyUsername = "username"
	// SecretKeyPassword is the application user's password.
	SecretKeyPassword = "password"
	// SecretKeyDatabase is the name of the application database.
	SecretKeyDatabase = "database"
	// SecretKeyReplicationPassword is the password of the replication user.
	SecretKeyReplicationPassword = "replication-password"
	// SecretKeyHost is the read-write Service's DNS name, for applications.
	SecretKeyHost = "host"
	// SecretKeyPort is the engine's port, for applications.
	SecretKeyPort = "port"
	// SecretKeyURI is a ready-to-use connection URI for the application user.
	SecretKeyURI = "uri"
)

// ReplicationUser is the engine user replicas connect as.
const ReplicationUser = "replicator"

// Endpoint is how applications reach a Database's engine.
type Endpoint struct {
	// Scheme is the URI scheme: mysql or postgresql.
	Scheme string
	// Port is the engine's TCP port.
	Port int32
}

// ClientEndpoint returns the URI scheme and port of db's engine.
func ClientEndpoint(db *databasev1.Database) (Endpoint, error) {
	eng, err := engineFor(db)
	if err != nil {
		return Endpoint{}, err
	}
	return Endpoint{Scheme: eng.portName(), Port: eng.port()}, nil
}
