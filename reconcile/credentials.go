package reconcile

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

const (
	// passwordLength and passwordAlphabet give about 190 bits per password,
	// in characters that need no quoting in a URI, a shell or SQL.
	passwordLength   = 32
	passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	// appUser is the application user's name in generated credentials.
	appUser = "app"
	// maxDatabaseNameLength fits both PostgreSQL (63) and MySQL (64).
	maxDatabaseNameLength = 63
)

// ensureCredentials makes sure the credentials Secret exists. It creates it
// once and never updates it: a Secret that exists, whoever made it, is used
// as-is. It reports a degradation instead of creating one when the data
// volumes already exist, because new passwords would not match the ones the
// data directory was initialised with.
func (r *Reconciler) ensureCredentials(ctx context.Context, db *databasev1.Database) (created bool, problem *degradation, err error) {
	key := client.ObjectKey{Namespace: db.Namespace, Name: render.CredentialsSecretName(db.Name)}
	// A Secret the user created beforehand may lack the operator's labels;
	// getSecret asks the API server when the cache does not have it.
	existing, err := r.getSecret(ctx, key.Namespace, key.Name)
	if err != nil {
		return false, nil, err
	}
	if existing != nil {
		return false, credentialsProblem(db, existing), nil
	}

	hasData, err := r.hasDataVolumes(ctx, db)
	if err != nil {
		return false, nil, err
	}
	if hasData {
		return false, &degradation{
			reason: "CredentialsMissing",
			message: fmt.Sprintf("Secret %s is missing but the data volumes exist; new passwords would not match the data. "+
				"Re-create the Secret with the original values (keys %s, %s, %s, %s, %s) and the labels %s=%s,%s=%s "+
				"(or annotate the Database afterwards) so the operator notices it.",
				key.Name, render.SecretKeyRootPassword, render.SecretKeyUsername, render.SecretKeyPassword,
				render.SecretKeyDatabase, render.SecretKeyReplicationPassword,
				render.LabelManagedBy, FieldManager, render.LabelInstance, db.Name),
		}, nil
	}

	secret, err := newCredentialsSecret(db)
	if err != nil {
		return false, nil, err
	}
	if err := r.Client.Create(ctx, secret, client.FieldOwner(FieldManager)); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return false, nil, nil
		}
		return false, nil, fmt.Errorf("create Secret %s: %w", key.Name, err)
	}
	r.echoes.wrote(db, "Secret", secret.Name, secret.ResourceVersion)
	return true, nil, nil
}

// mysqlReplicationPasswordLimit is the longest password MySQL's CHANGE
// REPLICATION SOURCE accepts for SOURCE_PASSWORD (error 3056,
// ER_CHANGE_SOURCE_PASSWORD_LENGTH), in characters.
const mysqlReplicationPasswordLimit = 32

// credentialsProblem is what an existing credentials Secret holds that the
// engine cannot use: values credentialValuesProblem refuses, or, with
// MySQL, a replication password longer than the limit, which would fail
// every replica's set-up. The operator generates
// passwords within it; a Secret the user supplies may not. A Database
// that can only ever run one server is left alone.
func credentialsProblem(db *databasev1.Database, secret *corev1.Secret) *degradation {
	if d := credentialValuesProblem(secret.Name, secret.Data); d != nil {
		return d
	}
	// A single server never uses replication; replicas may come from
	// spec.replicas or the autoscaler.
	replicas := int32(1)
	if db.Spec.Replicas != nil {
		replicas = *db.Spec.Replicas
	}
	if a := db.Spec.Autoscaling; a != nil && a.MaxReplicas > replicas {
		replicas = a.MaxReplicas
	}
	if db.Spec.Type != databasev1.MySQL || replicas <= 1 {
		return nil
	}
	n := utf8.RuneCount(secret.Data[render.SecretKeyReplicationPassword])
	if n <= mysqlReplicationPasswordLimit {
		return nil
	}
	return &degradation{
		reason: "ReplicationPasswordTooLong",
		message: fmt.Sprintf("Secret %s: key %s holds %d characters; MySQL replication accepts at most %d "+
			"(CHANGE REPLICATION SOURCE fails with error 3056). Set a password of at most %d characters; "+
			"the Database is left as it is until then.",
			secret.Name, render.SecretKeyReplicationPassword, n, mysqlReplicationPasswordLimit, mysqlReplicationPasswordLimit),
	}
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

// keptSecretMeta is the metadata of a Secret the operator creates for db and
// keeps: its labels (so the cache holds it and its events map to db) and no
// owner reference, so it outlives the Database like the data it unlocks.
func keptSecretMeta(db *databasev1.Database, name, component string) metav1.ObjectMeta {
	labels := render.SelectorLabels(db.Name)
	labels[render.LabelComponent] = component
	return metav1.ObjectMeta{Name: name, Namespace: db.Namespace, Labels: labels}
}

// hasDataVolumes reports whether any data PVC of db's StatefulSet exists.
func (r *Reconciler) hasDataVolumes(ctx context.Context, db *databasev1.Database) (bool, error) {
	pvcs, err := r.dataVolumes(ctx, db)
	return len(pvcs) > 0, err
}

// newCredentialsSecret generates passwords from crypto/rand. The Secret has
// no owner reference: it outlives the Database, like the data it unlocks.
func newCredentialsSecret(db *databasev1.Database) (*corev1.Secret, error) {
	endpoint, err := render.ClientEndpoint(db)
	if err != nil {
		return nil, err
	}
	passwords := make([]string, 3)
	for i := range passwords {
		if passwords[i], err = password(); err != nil {
			return nil, fmt.Errorf("generate password: %w", err)
		}
	}
	root, app, replication := passwords[0], passwords[1], passwords[2]
	database := databaseName(db.Name)
	host := fmt.Sprintf("%s.%s.svc", render.ServiceName(db.Name), db.Namespace)
	uri := url.URL{
		Scheme: endpoint.Scheme,
		User:   url.UserPassword(appUser, app),
		Host:   fmt.Sprintf("%s:%d", host, endpoint.Port),
		Path:   "/" + database,
	}
	return &corev1.Secret{
		ObjectMeta: keptSecretMeta(db, render.CredentialsSecretName(db.Name), "credentials"),
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{
			render.SecretKeyRootPassword:        root,
			render.SecretKeyUsername:            appUser,
			render.SecretKeyPassword:            app,
			render.SecretKeyDatabase:            database,
			render.SecretKeyReplicationPassword: replication,
			render.SecretKeyHost:                host,
			render.SecretKeyPort:                fmt.Sprint(endpoint.Port),
			render.SecretKeyURI:                 uri.String(),
		},
	}, nil
}

// password returns passwordLength characters drawn uniformly from
// passwordAlphabet with crypto/rand.
func password() (string, error) {
	max := big.NewInt(int64(len(passwordAlphabet)))
	var b strings.Builder
	for range passwordLength {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		b.WriteByte(passwordAlphabet[n.Int64()])
	}
	return b.String(), nil
}

// databaseName turns a Kubernetes name into an identifier both engines
// accept without quoting: dashes and dots become underscores.
func databaseName(name string) string {
	n := strings.NewReplacer("-", "_", ".", "_").Replace(name)
	if len(n) > maxDatabaseNameLength {
		n = n[:maxDatabaseNameLength]
	}
	return n
}
