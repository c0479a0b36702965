// Package objectstore reads and writes the objects of one S3-compatible
// bucket under one key prefix: WAL segments, binary logs and base backups.
//
// It is written for stores other than AWS as much as for AWS:
//   - checksums are sent and verified only when an operation requires them.
//     Since 2025 the AWS SDKs add CRC checksums to every upload by default,
//     which many non-AWS stores refuse; this is the most common backup
//     failure in the field;
//   - path-style addressing (https://endpoint/bucket/key) unless virtual
//     hosting is asked for, because most self-hosted stores have no
//     wildcard DNS for bucket names;
//   - no batch delete: DeleteObjects needs a Content-MD5 or checksum header
//     that stores differ on, so objects are deleted one by one.
//
// Integrity is end to end instead: every object written by Put carries the
// SHA-256 of its content in its user metadata, and Get refuses content that
// does not match it.
package objectstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// shaMetadataKey is the user-metadata key (x-amz-meta-sha256) holding the
// hex SHA-256 of an object's content.
const shaMetadataKey = "sha256"

// ErrNotFound is returned for an object that does not exist.
var ErrNotFound = errors.New("object not found")

// ErrConflict is returned by PutNew when the key already holds different
// content.
var ErrConflict = errors.New("object exists with different content")

// ErrCorrupt is returned by Get when an object's content does not match the
// SHA-256 recorded when it was written.
var ErrCorrupt = errors.New("object content does not match its recorded SHA-256")

// Config says where the objects are and how to reach them.
type Config struct {
	// Endpoint is the store's URL, such as https://s3.example.com:9000.
	// Empty means AWS S3 in Region.
	Endpoint string
	// Bucket is the bucket's name.
	Bucket string
	// Prefix is prepended, with a "/", to every key. It may be empty.
	Prefix string
	// Region is the bucket's region; stores that ignore regions accept any
	// (us-east-1 when empty).
	Region string
	// VirtualHosted addresses the bucket as https://bucket.endpoint/ instead
	// of https://endpoint/bucket/.
	VirtualHosted bool
	// AccessKeyID, SecretAccessKey and SessionToken are the credentials.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// CA is a PEM bundle of certificate authorities trusted for the
	// endpoint's certificate, in addition to the system's.
	CA []byte
}

// LogValue keeps the credentials out of logs: only the key ID's first
// characters are shown.
func (c Config) LogValue() slog.Value {
	id := c.AccessKeyID
	if len(id) > 4 {
		id = id[:4] + "…"
	}
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("bucket", c.Bucket),
		slog.String("prefix", c.Prefix),
		slog.String("region", c.Region),
		slog.String("accessKeyID", id),
	)
}

// Store is a bucket and a key prefix in it.
type Store struct {
	client *s3.Client
	bucket string
	prefix string
}

// New returns a Store for cfg. It makes no request.
func New(cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("object store: bucket is empty")
	}
	if cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
		return nil, errors.New("object store: access key ID or secret access key is empty")
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	var tlsConfig *tls.Config
	if len(cfg.CA) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(cfg.CA) {
			return nil, errors.New("object store: the CA bundle holds no PEM certificate")
		}
		tlsConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	client := s3.New(s3.Options{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken),
		HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			if tlsConfig != nil {
				t.TLSClientConfig = tlsConfig
			}
		}).WithTimeout(5 * time.Minute),
		BaseEndpoint: func() *string {
			if cfg.Endpoint == "" {
				return nil
			}
			return aws.String(cfg.Endpoint)
		}(),
		UsePathStyle:               !cfg.VirtualHosted,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	return &Store{client: client, bucket: cfg.Bucket, prefix: strings.Trim(cfg.Prefix, "/")}, nil
}

// Sub returns a Store for the keys under dir.
func (s *Store) Sub(dir string) *Store {
	return &Store{client: s.client, bucket: s.bucket, prefix: s.key(strings.Trim(dir, "/"))}
}

// Prefix is the key prefix every key of s is under.
func (s *Store) Prefix() string { return s.prefix }

// Bucket is the bucket's name.
func (s *Store) Bucket() string { return s.bucket }

func (s *Store) key(k string) string {
	if s.prefix == "" {
		return k
	}
	return s.prefix + "/" + k
}

// Object is one listed object; its key is relative to the Store's prefix.
type Object struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// Put writes data to key, replacing what is there.
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	sum := sha256.Sum256(data)
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.key(key)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		Metadata:      map[string]string{shaMetadataKey: hex.EncodeToString(sum[:])},
	})
	if err != nil {
		return fmt.Errorf("writing s3://%s/%s: %w", s.bucket, s.key(key), err)
	}
	return nil
}

// PutNew writes data to key unless key exists. An existing object with the
// same content is success (a retried archive command); one with different
// content is ErrConflict and is left as it is.
func (s *Store) PutNew(ctx context.Context, key string, data []byte) error {
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	have, err := s.headSHA(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return s.Put(ctx, key, data)
	case err != nil:
		return err
	case have == want:
		return nil
	case have == "":
		// Written by someone else: compare the content itself.
		old, err := s.get(ctx, key, false)
		if err != nil {
			return err
		}
		if bytes.Equal(old, data) {
			return nil
		}
	}
	return fmt.Errorf("s3://%s/%s: %w (stored sha256 %s, new %s)", s.bucket, s.key(key), ErrConflict, have, want)
}

// headSHA returns the SHA-256 recorded on key, "" when it has none.
func (s *Store) headSHA(ctx context.Context, key string) (string, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(key))})
	if err != nil {
		return "", s.wrap("reading metadata of", key, err)
	}
	return metadataSHA(out.Metadata), nil
}

// Exists says whether key exists.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	_, err := s.headSHA(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Get reads key. Content that does not match the SHA-256 recorded when it
// was written is ErrCorrupt.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	return s.get(ctx, key, true)
}

func (s *Store) get(ctx context.Context, key string, verify bool) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(key))})
	if err != nil {
		return nil, s.wrap("reading", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("reading s3://%s/%s: %w", s.bucket, s.key(key), err)
	}
	if want := metadataSHA(out.Metadata); verify && want != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			return nil, fmt.Errorf("s3://%s/%s: %w (recorded %s, read %s)", s.bucket, s.key(key), ErrCorrupt, want, got)
		}
	}
	return data, nil
}

// Open streams key; the caller verifies the content (PutStream's Info).
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(key))})
	if err != nil {
		return nil, s.wrap("reading", key, err)
	}
	return out.Body, nil
}

// List returns the objects whose keys start with dir (relative to the
// Store's prefix), in key order.
func (s *Store) List(ctx context.Context, dir string) ([]Object, error) {
	full := s.key(dir)
	strip := ""
	if s.prefix != "" {
		strip = s.prefix + "/"
	}
	var objects []Object
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(full)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", s.bucket, full, err)
		}
		for _, o := range page.Contents {
			objects = append(objects, Object{
				Key:          strings.TrimPrefix(aws.ToString(o.Key), strip),
				Size:         aws.ToInt64(o.Size),
				LastModified: aws.ToTime(o.LastModified),
			})
		}
	}
	return objects, nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(key))})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("deleting s3://%s/%s: %w", s.bucket, s.key(key), err)
	}
	return nil
}

// CheckBucket confirms that the bucket exists and the credentials reach it.
func (s *Store) CheckBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("bucket %s does not exist", s.bucket)
		}
		return fmt.Errorf("reaching bucket %s: %w", s.bucket, err)
	}
	return nil
}

// CreateBucket creates the bucket; one that exists already is success. For
// tests and first setup: the operator never creates buckets.
func (s *Store) CreateBucket(ctx context.Context) error {
	_, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("creating bucket %s: %w", s.bucket, err)
	}
	return nil
}

func (s *Store) wrap(verb, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%s s3://%s/%s: %w", verb, s.bucket, s.key(key), ErrNotFound)
	}
	return fmt.Errorf("%s s3://%s/%s: %w", verb, s.bucket, s.key(key), err)
}

func metadataSHA(md map[string]string) string {
	for k, v := range md {
		if strings.EqualFold(k, shaMetadataKey) {
			return v
		}
	}
	return ""
}

func isNotFound(err error) bool {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return true
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf)
}

// Join joins key elements with "/".
func Join(elem ...string) string { return path.Join(elem...) }
