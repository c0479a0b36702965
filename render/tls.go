package render

import (
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// TLS (spec.tls): the engine serves TLS with a certificate from a Secret
// mounted read-only into the database pods. Without spec.tls.secretName the
// Secret is <db>-tls, which the reconciler creates once (render only refers
// to it, as to the credentials Secret). The engine configuration in the
// ConfigMap names the mounted files, so turning TLS on or off changes the
// configuration checksum and rolls the pods; with TLS off nothing here is
// rendered and the objects are exactly those of a Database without spec.tls.

// Keys of a TLS Secret: the kubernetes.io/tls keys plus the CA, as
// cert-manager writes them.
const (
	// TLSCertKey holds the server certificate (chain), PEM.
	TLSCertKey = "tls.crt"
	// TLSPrivateKeyKey holds the server certificate's private key, PEM.
	TLSPrivateKeyKey = "tls.key"
	// TLSCAKey holds the CA certificate clients verify the server with, PEM.
	TLSCAKey = "ca.crt"
)

// TLSSecretKeys are the keys a TLS Secret must have, in a fixed order.
func TLSSecretKeys() []string { return []string{TLSCertKey, TLSPrivateKeyKey, TLSCAKey} }

const (
	// tlsVolumeName and tlsMountPath are where the TLS Secret appears in the
	// containers that use it.
	tlsVolumeName = "tls"
	tlsMountPath  = "/etc/database-operator/tls"
	// tlsVolumeMode: the files are owned by root with the pods' fsGroup
	// (the database user's group) as group; readable by that group and
	// nobody else. PostgreSQL refuses a root-owned key that is readable by
	// others or writable by the group.
	tlsVolumeMode int32 = 0o440
)

// TLSSecretFor returns the Secret db's pods mount for TLS: spec.tls.secretName
// when given, else the operator's <db>-tls; "" when TLS is off.
func TLSSecretFor(db *databasev1.Database) string {
	t := db.Spec.TLS
	if t == nil || !t.Enabled {
		return ""
	}
	if t.SecretName != "" {
		return t.SecretName
	}
	return TLSSecretName(db.Name)
}

// ServerDNSNames are the names a Database's server certificate must carry
// for clients that verify the host name: every Service as <name>,
// <name>.<namespace>, <name>.<namespace>.svc and
// <name>.<namespace>.svc.cluster.local, and every pod through the headless
// Service (*.<db>-headless.<namespace>.svc and .svc.cluster.local). The
// first, <db>.<namespace>.svc, is the read-write Service's usual name (the
// host of the credentials Secret).
func ServerDNSNames(db, namespace string) []string {
	var names []string
	for _, svc := range []string{ServiceName(db), ReadServiceName(db), HeadlessServiceName(db)} {
		names = append(names, svc+"."+namespace+".svc", svc, svc+"."+namespace, svc+"."+namespace+".svc.cluster.local")
	}
	headless := HeadlessServiceName(db) + "." + namespace
	return append(names, "*."+headless+".svc", "*."+headless+".svc.cluster.local")
}

// tlsFile is the path of a TLS Secret key in the containers.
func tlsFile(key string) string { return tlsMountPath + "/" + key }

// tlsVolume mounts the TLS Secret's three keys, and only those.
func tlsVolume(s *spec) *corev1ac.VolumeApplyConfiguration {
	secret := corev1ac.SecretVolumeSource().WithSecretName(s.tlsSecret).WithDefaultMode(tlsVolumeMode)
	for _, key := range TLSSecretKeys() {
		secret.WithItems(corev1ac.KeyToPath().WithKey(key).WithPath(key))
	}
	return corev1ac.Volume().WithName(tlsVolumeName).WithSecret(secret)
}

func tlsVolumeMount() *corev1ac.VolumeMountApplyConfiguration {
	return corev1ac.VolumeMount().WithName(tlsVolumeName).WithMountPath(tlsMountPath).WithReadOnly(true)
}
