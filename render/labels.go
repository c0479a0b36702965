package render

import databasev1 "github.com/example/database-operator/apis/database/v1"

// Label keys set on every child.
const (
	// LabelName is the application name; always "database".
	LabelName = "app.kubernetes.io/name"
	// LabelInstance is the Database's name.
	LabelInstance = "app.kubernetes.io/instance"
	// LabelManagedBy is always "database-operator".
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// LabelComponent says what a child is for (database, backup).
	LabelComponent = "app.kubernetes.io/component"
	// LabelType is the engine, mysql or postgresql. Never used in a selector.
	LabelType = "database.example.com/type"
	// LabelEnvironment is the Database's environment. Never used in a selector:
	// it may change, and StatefulSet selectors are immutable.
	LabelEnvironment = "database.example.com/environment"
	// LabelServiceRole distinguishes the Services (headless, primary, read),
	// so a ServiceMonitor can pick the headless one and scrape each pod once.
	LabelServiceRole = "database.example.com/service"

	// LabelRestoring is "true" on the pods of a Database whose restore is
	// in progress.
	LabelRestoring = "database.example.com/restoring"

	// ConfigChecksumAnnotation on the pod template holds a hash of the
	// rendered configuration, so a configuration change rolls the pods.
	ConfigChecksumAnnotation = "database.example.com/config-checksum"
	// TLSCertificateAnnotation on the pod template holds the fingerprint of
	// the mounted TLS certificate (Observed.TLSCertificate), so a renewed
	// certificate rolls the pods: the engines read their certificate files
	// only when they start (or reload). Only with TLS on.
	TLSCertificateAnnotation = "database.example.com/tls-certificate"
)

const (
	appName   = "database"
	managedBy = "database-operator"
)

// SelectorLabels are the labels that select a Database's pods. They never
// change for the life of a Database (StatefulSet selectors are immutable), so
// they hold nothing but the name.
func SelectorLabels(db string) map[string]string {
	return map[string]string{
		LabelName:      appName,
		LabelInstance:  db,
		LabelManagedBy: managedBy,
	}
}

// labels are the metadata labels of a child: the selector labels plus
// descriptive ones that may change.
func labels(db *databasev1.Database, component string) map[string]string {
	l := SelectorLabels(db.Name)
	l[LabelComponent] = component
	l[LabelType] = string(db.Spec.Type)
	l[LabelEnvironment] = string(environmentOf(db))
	return l
}

func with(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for mk, mv := range m {
		out[mk] = mv
	}
	out[k] = v
	return out
}
