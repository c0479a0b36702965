package reconcile

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/internal/pki"
	"github.com/example/database-operator/render"
)

// TLS (spec.tls.enabled). The certificate Secret is treated like the
// credentials Secret: the operator creates <db>-tls once, without an owner
// reference, and never updates, deletes or regenerates it while it exists,
// so certificates are never rotated by accident (rotation: delete it and
// restart the pods). A Secret named by spec.tls.secretName (for example
// cert-manager's) is only read. Either way, a Secret that is missing or
// lacks a key degrades the Database, and the reconciler then holds back
// the StatefulSet and the ConfigMap, so running pods are never pointed at
// files that are not there.

// ensureTLS makes sure the TLS Secret db's pods mount exists and is usable,
// creating <db>-tls when the operator owns it. It records a
// TLSCertificateCreated Event when it creates one. problem is non-nil when
// a human must act on the Secret.
func (r *Reconciler) ensureTLS(ctx context.Context, db *databasev1.Database) (problem *degradation, err error) {
	name := render.TLSSecretFor(db)
	if name == "" {
		return nil, nil
	}
	userSecret := db.Spec.TLS.SecretName != ""
	secret, err := r.getSecret(ctx, db.Namespace, name)
	if err != nil {
		return nil, err
	}
	if secret != nil {
		return checkTLSSecret(db, secret, userSecret), nil
	}
	if userSecret {
		return &degradation{
			reason: "TLSSecretMissing",
			message: fmt.Sprintf("Secret %s named by spec.tls.secretName does not exist; create it with keys %s, %s and %s "+
				"(for example with a cert-manager Certificate). %s The pods are left as they are until then.",
				name, render.TLSCertKey, render.TLSPrivateKeyKey, render.TLSCAKey, noticeHint(db)),
		}, nil
	}

	secret, err = newTLSSecret(db, r.now(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := r.Client.Create(ctx, secret, client.FieldOwner(FieldManager)); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// Someone (another reconcile, a human) was first: use theirs,
			// as checked on the next reconcile its creation triggers.
			return nil, nil
		}
		return nil, fmt.Errorf("create Secret %s: %w", name, err)
	}
	r.echoes.wrote(db, "Secret", secret.Name, secret.ResourceVersion)
	r.event(db, corev1.EventTypeNormal, "TLSCertificateCreated", "Create",
		fmt.Sprintf("generated a CA and a server certificate valid until %s in Secret %s",
			r.now().Add(pki.DefaultValidity).UTC().Format(time.DateOnly), name))
	return nil, nil
}

// getSecret reads a Secret from the cache and, when the cache does not have
// it (it only holds Secrets with the operator's label), from the API
// server; nil when it does not exist.
func (r *Reconciler) getSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	key := client.ObjectKey{Namespace: namespace, Name: name}
	secret := &corev1.Secret{}
	err := r.Client.Get(ctx, key, secret)
	if err == nil {
		return secret, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get Secret %s: %w", name, err)
	}
	err = r.APIReader.Get(ctx, key, secret)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Secret %s: %w", name, err)
	}
	return secret, nil
}

// checkTLSSecret reports a Secret that lacks one of the keys the pods
// mount, or whose certificate and key do not belong together. Messages
// name keys, never values.
func checkTLSSecret(db *databasev1.Database, secret *corev1.Secret, userSecret bool) *degradation {
	fix := fmt.Sprintf("delete it so the operator creates a new one, then restart the pods. %s", noticeHint(db))
	if userSecret {
		fix = fmt.Sprintf("fix the Secret (or its issuer). %s", noticeHint(db))
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
	if _, err := tls.X509KeyPair(secret.Data[render.TLSCertKey], secret.Data[render.TLSPrivateKeyKey]); err != nil {
		return &degradation{
			reason: "TLSSecretInvalid",
			message: fmt.Sprintf("Secret %s: %s and %s are not a PEM certificate and its private key (%v); %s The pods are left as they are until then.",
				secret.Name, render.TLSCertKey, render.TLSPrivateKeyKey, err, fix),
		}
	}
	return nil
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
	labels := render.SelectorLabels(db.Name)
	labels[render.LabelComponent] = "tls"
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      render.TLSSecretName(db.Name),
			Namespace: db.Namespace,
			Labels:    labels,
		},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{
			render.TLSCertKey:       bundle.CertPEM,
			render.TLSPrivateKeyKey: bundle.KeyPEM,
			render.TLSCAKey:         bundle.CAPEM,
		},
	}, nil
}

// withoutConfigMap drops the ConfigMap from the children to apply: with the
// TLS Secret unusable, a new configuration naming its files must not reach
// the running pods (a restarted pod would read it and fail).
func withoutConfigMap(list []child) []child {
	out := make([]child, 0, len(list))
	for _, ch := range list {
		if ch.kind != kindConfigMap.kind {
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
