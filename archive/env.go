package archive

import (
	"fmt"
	"os"
	"strings"

	"github.com/example/database-operator/objectstore"
)

// Environment variables that configure an archive in the database and
// backup containers. The render package sets them; the credentials come
// from the user's Secret through secretKeyRef, so they are in no command
// line and no object but that Secret.
const (
	EnvEndpoint      = "ARCHIVE_S3_ENDPOINT"
	EnvBucket        = "ARCHIVE_S3_BUCKET"
	EnvPath          = "ARCHIVE_S3_PATH"
	EnvRegion        = "ARCHIVE_S3_REGION"
	EnvVirtualHosted = "ARCHIVE_S3_VIRTUAL_HOSTED"
	EnvCAFile        = "ARCHIVE_S3_CA_FILE"
	EnvAccessKeyID   = "ARCHIVE_S3_ACCESS_KEY_ID"
	EnvSecretKey     = "ARCHIVE_S3_SECRET_ACCESS_KEY"
	EnvSessionToken  = "ARCHIVE_S3_SESSION_TOKEN"
	// EnvDatabase names the archive (its folder under the path); EnvUID,
	// EnvNamespace identify the Database that owns it.
	EnvDatabase  = "ARCHIVE_DATABASE"
	EnvUID       = "ARCHIVE_DATABASE_UID"
	EnvNamespace = "ARCHIVE_NAMESPACE"
)

// RestorePrefix is the prefix of the same variables for the archive a
// restore reads (RESTORE_S3_ENDPOINT, ...), which may be another store.
const RestorePrefix = "RESTORE_"

// FromEnv opens the archive the environment describes; prefix is "" for the
// Database's own archive and RestorePrefix for a restore's source.
func FromEnv(prefix string, getenv func(string) string) (*Archive, objectstore.Config, error) {
	name := func(n string) string {
		if prefix != "" {
			return prefix + strings.TrimPrefix(n, "ARCHIVE_")
		}
		return n
	}
	get := func(n string) string { return getenv(name(n)) }
	cfg := objectstore.Config{
		Endpoint:        get(EnvEndpoint),
		Bucket:          get(EnvBucket),
		Prefix:          get(EnvPath),
		Region:          get(EnvRegion),
		VirtualHosted:   get(EnvVirtualHosted) == "true",
		AccessKeyID:     get(EnvAccessKeyID),
		SecretAccessKey: get(EnvSecretKey),
		SessionToken:    get(EnvSessionToken),
	}
	if f := get(EnvCAFile); f != "" {
		ca, err := os.ReadFile(f)
		if err != nil {
			return nil, cfg, fmt.Errorf("%s: %w", name(EnvCAFile), err)
		}
		cfg.CA = ca
	}
	database := get(EnvDatabase)
	if database == "" {
		return nil, cfg, fmt.Errorf("%s is unset", name(EnvDatabase))
	}
	store, err := objectstore.New(cfg)
	if err != nil {
		return nil, cfg, fmt.Errorf("%w (from %s*)", err, name("ARCHIVE_S3_"))
	}
	return New(store, database), cfg, nil
}
