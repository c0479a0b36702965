package reconcile

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/internal/pki"
	"github.com/example/database-operator/render"
)

// TLS (spec.tls.enabled). The certificate Secret is treated like the
// credentials Secret: the operator creates <db>-tls once, without an owner
// reference, and never updates, deletes or regenerates it while it exists,
// so certificates are never rotated by accident (rotation: delete it). A
// Secret named by spec.tls.secretName (for example cert-manager's) is only
// read. Either way, a Secret that is missing, lacks a key, or holds an
// expired certificate or one its CA does not verify degrades the Database,
// and the reconciler then holds back every child whose rendering depends on
// TLS being usable (the StatefulSet, the ConfigMap, the backup CronJob), so
// neither running pods nor backups are pointed at a TLS that is not there.
//
// The engines read their certificate files only when they start (or
// reload), so the fingerprint of the Secret's certificate is rendered into
// the pod template (render.Observed): a renewed certificate rolls the pods
// like a configuration change. The reconciler sees a renewal when the
// Secret carries its labels (it watches only those) or at its next
// reconcile of the Database.

// ensureTLS makes sure the TLS Secret db's pods mount exists and is usable,
// creating <db>-tls when the operator owns it, and returns the fingerprint
// of its certificate (render.TLSFingerprint); "" when TLS is off or there
// is a problem. It records a TLSCertificateCreated Event when it creates
// the Secret. problem is non-nil when a human must act on the Secret.
func (r *Reconciler) ensureTLS(ctx context.Context, db *databasev1.Database) (fingerprint string, problem *degradation, err error) {
	name := render.TLSSecretFor(db)
	if name == "" {
		return "", nil, nil
	}
	userSecret := db.Spec.TLS.SecretName != ""
	secret, err := r.getSecret(ctx, db.Namespace, name)
	if err != nil {
		return "", nil, err
	}
	if secret == nil && userSecret {
		return "", &degradation{
			reason: "TLSSecretMissing",
			message: fmt.Sprintf("Secret %s named by spec.tls.secretName does not exist; create it with keys %s, %s and %s "+
				"(for example with a cert-manager Certificate). %s The pods are left as they are until then.",
				name, render.TLSCertKey, render.TLSPrivateKeyKey, render.TLSCAKey, noticeHint(db)),
		}, nil
	}
	if secret == nil {
		if secret, err = r.createTLSSecret(ctx, db); err != nil {
			return "", nil, err
		}
	}
	if problem := checkTLSSecret(db, secret, userSecret, r.now()); problem != nil {
		return "", problem, nil
	}
	return render.TLSFingerprint(secret.Data), nil, nil
}

// createTLSSecret creates <db>-tls and returns it; when someone (another
// reconcile, a human) was first, it returns theirs, read from the API
// server.
func (r *Reconciler) createTLSSecret(ctx context.Context, db *databasev1.Database) (*corev1.Secret, error) {
	secret, err := newTLSSecret(db, r.now(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := r.Client.Create(ctx, secret, client.FieldOwner(FieldManager)); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create Secret %s: %w", secret.Name, err)
		}
		theirs := &corev1.Secret{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(secret), theirs); err != nil {
			// Deleted again in between, or unreadable: retry.
			return nil, fmt.Errorf("get Secret %s: %w", secret.Name, err)
		}
		return theirs, nil
	}
	r.echoes.wrote(db, "Secret", secret.Name, secret.ResourceVersion)
	r.event(db, corev1.EventTypeNormal, "TLSCertificateCreated", "Create",
		fmt.Sprintf("generated a CA and a server certificate valid until %s in Secret %s",
			r.now().Add(pki.DefaultValidity).UTC().Format(time.DateOnly), secret.Name))
	return secret, nil
}

// checkTLSSecret reports a Secret that lacks one of the keys the pods
// mount, whose certificate and key do not belong together, whose
// certificate has expired at now, or whose ca.crt does not verify its
// certificate (clients and replicas verify the server with ca.crt).
// Messages name keys, never values.
func checkTLSSecret(db *databasev1.Database, secret *corev1.Secret, userSecret bool, now time.Time) *degradation {
	fix := fmt.Sprintf("delete it so the operator creates a new one (the pods then roll onto it). %s", noticeHint(db))
	if userSecret {
		fix = fmt.Sprintf("fix the Secret (or its issuer). %s", noticeHint(db))
	}
	invalid := func(format string, args ...any) *degradation {
		return &degradation{
			reason:  "TLSSecretInvalid",
			message: fmt.Sprintf("Secret %s: %s; %s The pods are left as they are until then.", secret.Name, fmt.Sprintf(format, args...), fix),
		}
	}
	for _, key := range render.TLSSecretKeys() {
		if len(secret.Data[key]) == 0 {
			return &degradation{
				reason: "TLSSecretInvalid",
				message: fmt.Sprintf("Secret %s has no key %s (it needs %s, %s and %s); %s The pods are left as they are until then.",
					secret.Name, key, render.TLSCertKey, render.TLSPrivateKeyKey, render.TLSCAKey, fix),
			}
		}
	}
	pair, err := tls.X509KeyPair(secret.Data[render.TLSCertKey], secret.Data[render.TLSPrivateKeyKey])
	if err != nil {
		return invalid("%s and %s are not a PEM certificate and its private key (%v)", render.TLSCertKey, render.TLSPrivateKeyKey, err)
	}
	chain := make([]*x509.Certificate, 0, len(pair.Certificate))
	for i, der := range pair.Certificate {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return invalid("certificate %d of %s does not parse (%v)", i+1, render.TLSCertKey, err)
		}
		chain = append(chain, cert)
	}
	leaf := chain[0]
	if now.After(leaf.NotAfter) {
		return invalid("the certificate in %s expired at %s", render.TLSCertKey, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(secret.Data[render.TLSCAKey]) {
		return invalid("%s holds no PEM certificate", render.TLSCAKey)
	}
	intermediates := x509.NewCertPool()
	for _, cert := range chain[1:] {
		intermediates.AddCert(cert)
	}
	// A certificate issued a moment ago by an issuer whose clock is ahead
	// of the operator's is not held against it: its chain is checked from
	// the time it becomes valid.
	at := now
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: intermediates, CurrentTime: at,
		// The chain, not the usages: clients judge those (and host names).
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return invalid("%s does not verify the certificate in %s (%v)", render.TLSCAKey, render.TLSCertKey, err)
	}
	// Replicas verify the primary's name (verify-full, VERIFY_IDENTITY): a
	// certificate without it would leave them Ready but not replicating.
	if mayHaveReplicas(db) {
		primary := render.PrimaryServiceHost(db.Name, db.Namespace)
		if err := leaf.VerifyHostname(primary); err != nil {
			return invalid("the certificate in %s does not name %s, the read-write Service replicas connect to (add it to its DNS names)",
				render.TLSCertKey, primary)
		}
	}
	return nil
}

// mayHaveReplicas reports whether db runs, or may be scaled to, more than
// one pod.
func mayHaveReplicas(db *databasev1.Database) bool {
	if db.Spec.Replicas != nil && *db.Spec.Replicas > 1 {
		return true
	}
	return db.Spec.Autoscaling != nil && db.Spec.Autoscaling.MaxReplicas > 1
}

// noticeHint tells how to make the operator look again: it does not watch
// Secrets without its labels.
func noticeHint(db *databasev1.Database) string {
	return fmt.Sprintf("The operator does not watch unlabelled Secrets: annotate the Database afterwards, or give the Secret the labels %s=%s,%s=%s, so it notices.",
		render.LabelManagedBy, FieldManager, render.LabelInstance, db.Name)
}

// newTLSSecret issues a CA and a server certificate for every Service and
// pod name of db. The CA's private key is not kept. The Secret has no owner
// reference: like the credentials, it outlives the Database, so clients
// that trust its CA keep working when the Database is re-created.
func newTLSSecret(db *databasev1.Database, now time.Time, random io.Reader) (*corev1.Secret, error) {
	bundle, err := pki.Issue(pki.Request{
		CAName:   fmt.Sprintf("%s.%s database CA", db.Name, db.Namespace),
		DNSNames: render.ServerDNSNames(db.Name, db.Namespace),
		Now:      now,
		Rand:     random,
	})
	if err != nil {
		return nil, fmt.Errorf("issue the TLS certificate of Database %s: %w", db.Name, err)
	}
	return &corev1.Secret{
		ObjectMeta: keptSecretMeta(db, render.TLSSecretName(db.Name), "tls"),
		Type:       corev1.SecretTypeTLS,
		Data: map[string][]byte{
			render.TLSCertKey:       bundle.CertPEM,
			render.TLSPrivateKeyKey: bundle.KeyPEM,
			render.TLSCAKey:         bundle.CAPEM,
		},
	}, nil
}

// tlsDependentKinds are the kinds of the children applied with the others
// whose rendering depends on TLS being usable: the ConfigMap names the
// certificate files and turns TLS on in the engine, and the backup
// CronJob's Jobs ask for TLS (PostgreSQL's PGSSLMODE=require), which the
// running pods do not offer before the new configuration reaches them. The
// StatefulSet, which mounts the Secret, is applied apart and held back too.
// TestTLSDependentsHeldBack checks this list against render.
var tlsDependentKinds = map[string]bool{kindConfigMap.kind: true, kindCronJob.kind: true}

// withoutTLSDependents drops the children of tlsDependentKinds from the
// children to apply: with the TLS Secret unusable, neither a configuration
// naming its files (a restarted pod would read it and fail) nor a backup
// Job asking for TLS (every backup would fail) may reach the cluster. The
// ones that exist stay as they are.
func withoutTLSDependents(list []child) []child {
	out := make([]child, 0, len(list))
	for _, ch := range list {
		if !tlsDependentKinds[ch.kind] {
			out = append(out, ch)
		}
	}
	return out
}

// now is the reconciler's clock.
func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
