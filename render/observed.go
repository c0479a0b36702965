package render

import (
	"crypto/sha256"
	"encoding/hex"
)

// Observed is what the reconciler read from the cluster about one Database
// that its children must reflect. Render reads nothing itself: these are
// inputs like the Database and the Options, so rendering stays pure and
// deterministic. Options are the same for every Database; Observed is per
// Database. The zero value means nothing was observed and renders exactly
// what Render does.
type Observed struct {
	// TLSCertificate is the fingerprint (TLSFingerprint) of the certificate
	// in the TLS Secret the pods mount. With TLS on it becomes the pod
	// template's TLSCertificateAnnotation, so a renewed certificate rolls
	// the pods as a configuration change does: PostgreSQL and MySQL read
	// their certificate files only when they start (or reload). With TLS
	// off it is ignored; empty renders no annotation.
	TLSCertificate string

	// RestoreDone says the Database's restore finished: its Restored
	// condition is True. spec.restore then no longer applies: the pods stop
	// mounting the source's backup volume and the StatefulSet gets every
	// replica. Until then a Database with spec.restore runs only pod 0,
	// which restores.
	RestoreDone bool

	// KeepPods is the fewest pods the StatefulSet keeps whatever
	// spec.replicas says: the primary's ordinal plus one, while a scale-down
	// would remove the pod that holds the primary role. The operator
	// switches over to a pod that stays first; 0 keeps nothing extra.
	KeepPods int32
}

// TLSFingerprint returns the fingerprint of a TLS Secret's certificate, for
// Observed.TLSCertificate: the first 16 hex digits of the SHA-256 of its
// tls.crt and ca.crt. A new certificate (renewed, or re-issued with a new
// key) or a new CA changes it; the private key is not hashed, as it never
// changes alone in a valid Secret. "" when the Secret has no tls.crt.
func TLSFingerprint(data map[string][]byte) string {
	cert := data[TLSCertKey]
	if len(cert) == 0 {
		return ""
	}
	h := sha256.New()
	h.Write(cert)
	// PEM never holds a NUL byte: it separates the two files unambiguously.
	h.Write([]byte{0})
	h.Write(data[TLSCAKey])
	return hex.EncodeToString(h.Sum(nil))[:16]
}
