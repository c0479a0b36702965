package objectstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	. "github.com/onsi/gomega"

	"github.com/example/database-operator/objectstore"
)

// checksumRefusingStore wraps an S3 implementation in the behaviour of the
// many stores that refuse the flexible checksums the AWS SDKs send by
// default since 2025: any request carrying one is a 400. It counts the
// requests it refused.
func checksumRefusingStore(next http.Handler, refused *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for name, values := range r.Header {
			lower := strings.ToLower(name)
			unrequested := strings.HasPrefix(lower, "x-amz-checksum-") ||
				lower == "x-amz-sdk-checksum-algorithm" ||
				lower == "x-amz-trailer" ||
				(lower == "content-encoding" && strings.Contains(strings.Join(values, ","), "aws-chunked")) ||
				(lower == "x-amz-content-sha256" && strings.Contains(strings.Join(values, ","), "TRAILER"))
			if unrequested {
				refused.Add(1)
				http.Error(w, "InvalidRequest: unsupported header "+name, http.StatusBadRequest)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// fakeStore serves gofakes3 behind checksumRefusingStore, over TLS with a
// certificate of its own CA (the SDK sends its default checksums only over
// TLS, and the CA exercises Config.CA).
func fakeStore(t *testing.T) (endpoint string, ca []byte, refused *atomic.Int64) {
	t.Helper()
	refused = &atomic.Int64{}
	fake := gofakes3.New(s3mem.New(), gofakes3.WithAutoBucket(true))
	srv := httptest.NewTLSServer(checksumRefusingStore(fake.Server(), refused))
	t.Cleanup(srv.Close)
	ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return srv.URL, ca, refused
}

// backends are the S3 implementations every behaviour is checked on:
// gofakes3 refusing unrequested checksums, always; SeaweedFS when the
// Makefile started one (make test always does).
func backends(t *testing.T) map[string]objectstore.Config {
	t.Helper()
	endpoint, ca, refused := fakeStore(t)
	t.Cleanup(func() {
		if n := refused.Load(); n != 0 {
			t.Errorf("the client sent %d requests with checksums the store did not ask for", n)
		}
	})
	out := map[string]objectstore.Config{
		"gofakes3": {Endpoint: endpoint, CA: ca, Bucket: "backups", Prefix: "team-a", AccessKeyID: "AKIDTEST", SecretAccessKey: "secret-test"},
	}
	if sw, ok := seaweedConfig(t); ok {
		out["seaweedfs"] = sw
	}
	return out
}

// seaweedConfig is the SeaweedFS server the Makefile started (S3_TEST_*).
// Outside make it is required unless OBJECTSTORE_ONLY_FAKE=1 says the run
// knowingly covers gofakes3 alone.
func seaweedConfig(t *testing.T) (objectstore.Config, bool) {
	endpoint := os.Getenv("S3_TEST_ENDPOINT")
	if endpoint == "" {
		if os.Getenv("OBJECTSTORE_ONLY_FAKE") == "1" {
			return objectstore.Config{}, false
		}
		t.Fatalf("S3_TEST_ENDPOINT is unset: run the tests with make test (which starts SeaweedFS), make s3-up and its env, or OBJECTSTORE_ONLY_FAKE=1 for gofakes3 alone")
	}
	cfg := objectstore.Config{
		Endpoint: endpoint, Bucket: "objectstore-test", Prefix: fmt.Sprintf("run-%s", randomHex(t)),
		AccessKeyID: os.Getenv("S3_TEST_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("S3_TEST_SECRET_ACCESS_KEY"),
	}
	s, err := objectstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return cfg, true
}

func randomHex(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

func newStore(t *testing.T, cfg objectstore.Config) *objectstore.Store {
	t.Helper()
	s, err := objectstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPutGetListDelete(t *testing.T) {
	for name, cfg := range backends(t) {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			s := newStore(t, cfg)

			g.Expect(s.Put(ctx, "wal/000000010000000000000001", []byte("one"))).To(Succeed())
			g.Expect(s.Put(ctx, "wal/000000010000000000000002", []byte("two"))).To(Succeed())
			g.Expect(s.Put(ctx, "base/b1/backup.json", []byte("{}"))).To(Succeed())

			got, err := s.Get(ctx, "wal/000000010000000000000002")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(got)).To(Equal("two"))

			list, err := s.List(ctx, "wal/")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(keys(list)).To(Equal([]string{"wal/000000010000000000000001", "wal/000000010000000000000002"}))
			g.Expect(list[0].Size).To(Equal(int64(3)))
			g.Expect(list[0].LastModified.IsZero()).To(BeFalse())

			_, err = s.Get(ctx, "wal/missing")
			g.Expect(errors.Is(err, objectstore.ErrNotFound)).To(BeTrue(), "%v", err)
			exists, err := s.Exists(ctx, "wal/missing")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(exists).To(BeFalse())

			g.Expect(s.Delete(ctx, "wal/000000010000000000000001")).To(Succeed())
			g.Expect(s.Delete(ctx, "wal/000000010000000000000001")).To(Succeed(), "deleting a missing key")
			list, err = s.List(ctx, "")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(keys(list)).To(Equal([]string{"base/b1/backup.json", "wal/000000010000000000000002"}))

			// Sub stores see only their own keys.
			sub := s.Sub("base/b1")
			list, err = sub.List(ctx, "")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(keys(list)).To(Equal([]string{"backup.json"}))
		})
	}
}

func TestPutNewNeverOverwritesDifferentContent(t *testing.T) {
	for name, cfg := range backends(t) {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			s := newStore(t, cfg)

			g.Expect(s.PutNew(ctx, "wal/seg", []byte("content"))).To(Succeed())
			g.Expect(s.PutNew(ctx, "wal/seg", []byte("content"))).To(Succeed(), "a retried push of the same content")
			err := s.PutNew(ctx, "wal/seg", []byte("other"))
			g.Expect(errors.Is(err, objectstore.ErrConflict)).To(BeTrue(), "%v", err)
			got, err := s.Get(ctx, "wal/seg")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(got)).To(Equal("content"), "the first content is kept")
		})
	}
}

// TestGetRefusesCorruptContent overwrites an object behind the Store's
// back, keeping its recorded SHA-256, as a bit flip in the store would.
func TestGetRefusesCorruptContent(t *testing.T) {
	for name, cfg := range backends(t) {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			s := newStore(t, cfg)
			g.Expect(s.Put(ctx, "wal/seg", []byte("good content"))).To(Succeed())

			raw := rawClient(t, cfg)
			head, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(objectstore.Join(cfg.Prefix, "wal/seg"))})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(head.Metadata).To(HaveKey(BeEquivalentTo("sha256")))
			_, err = raw.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String(cfg.Bucket), Key: aws.String(objectstore.Join(cfg.Prefix, "wal/seg")),
				Body: bytes.NewReader([]byte("good c0ntent")), Metadata: head.Metadata,
			})
			g.Expect(err).NotTo(HaveOccurred())

			_, err = s.Get(ctx, "wal/seg")
			g.Expect(errors.Is(err, objectstore.ErrCorrupt)).To(BeTrue(), "%v", err)
		})
	}
}

func TestPutStream(t *testing.T) {
	const part = 5 << 20 // S3's smallest part
	for name, cfg := range backends(t) {
		t.Run(name, func(t *testing.T) {
			for _, size := range []int{0, 1000, part, 2*part + 12345} {
				t.Run(fmt.Sprint(size), func(t *testing.T) {
					g := NewWithT(t)
					ctx := context.Background()
					s := newStore(t, cfg)
					data := make([]byte, size)
					_, _ = rand.Read(data)
					key := fmt.Sprintf("base/%d/base.tar", size)
					info, err := s.PutStream(ctx, key, bytes.NewReader(data), part)
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(info.Size).To(Equal(int64(size)))

					r, err := s.Open(ctx, key)
					g.Expect(err).NotTo(HaveOccurred())
					defer r.Close()
					got, err := io.ReadAll(objectstore.VerifyingReader(r, info))
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(bytes.Equal(got, data)).To(BeTrue())

					// The same bytes against another record are refused.
					r2, err := s.Open(ctx, key)
					g.Expect(err).NotTo(HaveOccurred())
					defer r2.Close()
					_, err = io.ReadAll(objectstore.VerifyingReader(r2, objectstore.Info{Size: info.Size + 1, SHA256: info.SHA256}))
					g.Expect(errors.Is(err, objectstore.ErrCorrupt)).To(BeTrue(), "%v", err)
				})
			}
		})
	}
}

// TestOpenParallel: ranged reads in parallel deliver the object in order,
// whatever the chunk size against the object's; a recorded size longer
// than the object fails rather than ending short.
func TestOpenParallel(t *testing.T) {
	for name, cfg := range backends(t) {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			s := newStore(t, cfg)
			data := make([]byte, 3<<20+777)
			_, _ = rand.Read(data)
			info, err := s.PutStream(ctx, "base/p/base.tar", bytes.NewReader(data), 0)
			g.Expect(err).NotTo(HaveOccurred())
			for _, c := range []struct{ chunk, inFlight int }{{1 << 20, 3}, {1000, 8}, {4 << 20, 1}, {len(data), 2}} {
				r := s.OpenParallel(ctx, "base/p/base.tar", info.Size, c.chunk, c.inFlight)
				got, err := io.ReadAll(objectstore.VerifyingReader(r, info))
				g.Expect(r.Close()).To(Succeed())
				g.Expect(err).NotTo(HaveOccurred(), "chunk %d, %d in flight", c.chunk, c.inFlight)
				g.Expect(bytes.Equal(got, data)).To(BeTrue(), "chunk %d, %d in flight", c.chunk, c.inFlight)
			}
			r := s.OpenParallel(ctx, "base/p/base.tar", info.Size+10, 1<<20, 3)
			_, err = io.ReadAll(r)
			g.Expect(r.Close()).To(Succeed())
			g.Expect(err).To(HaveOccurred(), "a recorded size past the object's end")
			// Closing early stops the requests.
			r = s.OpenParallel(ctx, "base/p/base.tar", info.Size, 1000, 4)
			buf := make([]byte, 10)
			_, err = io.ReadFull(r, buf)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(r.Close()).To(Succeed())
		})
	}
}

// TestFailedStreamLeavesNoObject: a stream that fails midway (pg_basebackup
// dying) must not leave an object that looks like a complete backup.
func TestFailedStreamLeavesNoObject(t *testing.T) {
	const part = 5 << 20
	for name, cfg := range backends(t) {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			s := newStore(t, cfg)
			broken := io.MultiReader(bytes.NewReader(make([]byte, 2*part+10)), errReader{errors.New("pg_basebackup exited 1")})
			_, err := s.PutStream(ctx, "base/broken/base.tar", broken, part)
			g.Expect(err).To(MatchError(ContainSubstring("pg_basebackup exited 1")))
			exists, err := s.Exists(ctx, "base/broken/base.tar")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(exists).To(BeFalse())
		})
	}
}

// TestDefaultSDKClientIsRefused is the negative control of the checksum
// rule: the SDK's default client sends checksums on uploads and the
// refusing store turns it away, so the Store passing the other tests there
// is its configuration's doing.
func TestDefaultSDKClientIsRefused(t *testing.T) {
	g := NewWithT(t)
	endpoint, ca, refused := fakeStore(t)
	client := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true, HTTPClient: trusting(t, ca),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret-test", ""),
		// What config.LoadDefaultConfig gives every client without
		// AWS_REQUEST_CHECKSUM_CALCULATION in its environment.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
	})
	_, err := client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String("backups"), Key: aws.String("k"), Body: bytes.NewReader([]byte("x")),
	})
	g.Expect(err).To(HaveOccurred())
	g.Expect(refused.Load()).To(BeNumerically(">", 0))
}

func TestConfigLogValueHidesCredentials(t *testing.T) {
	g := NewWithT(t)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("store", "s3", objectstore.Config{
		Endpoint: "https://s3.local", Bucket: "b", AccessKeyID: "AKIAEXAMPLEKEY", SecretAccessKey: "wJalrXUtnFEMI", SessionToken: "tok-secret",
	})
	g.Expect(buf.String()).To(ContainSubstring("https://s3.local"))
	g.Expect(buf.String()).NotTo(ContainSubstring("wJalrXUtnFEMI"))
	g.Expect(buf.String()).NotTo(ContainSubstring("tok-secret"))
	g.Expect(buf.String()).NotTo(ContainSubstring("AKIAEXAMPLEKEY"))
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	g := NewWithT(t)
	_, err := objectstore.New(objectstore.Config{Bucket: "b"})
	g.Expect(err).To(MatchError(ContainSubstring("secret access key")))
	_, err = objectstore.New(objectstore.Config{AccessKeyID: "a", SecretAccessKey: "s"})
	g.Expect(err).To(MatchError(ContainSubstring("bucket")))
	_, err = objectstore.New(objectstore.Config{Bucket: "b", AccessKeyID: "a", SecretAccessKey: "s", CA: []byte("not pem")})
	g.Expect(err).To(MatchError(ContainSubstring("PEM")))
}

// trusting is an HTTP client that trusts ca (the system's roots when empty).
func trusting(t *testing.T, ca []byte) *http.Client {
	if len(ca) == 0 {
		return http.DefaultClient
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("bad CA PEM")
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// TestUntrustedEndpointIsRefused: without the CA, the self-signed store's
// certificate is refused.
func TestUntrustedEndpointIsRefused(t *testing.T) {
	g := NewWithT(t)
	endpoint, _, _ := fakeStore(t)
	s, err := objectstore.New(objectstore.Config{Endpoint: endpoint, Bucket: "b", AccessKeyID: "a", SecretAccessKey: "s"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.CheckBucket(context.Background())).To(MatchError(ContainSubstring("certificate")))
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func keys(objects []objectstore.Object) []string {
	var out []string
	for _, o := range objects {
		out = append(out, o.Key)
	}
	return out
}

// rawClient is an SDK client behind the Store's back, with the Store's
// checksum settings so the refusing store accepts it.
func rawClient(t *testing.T, cfg objectstore.Config) *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(cfg.Endpoint), UsePathStyle: true, HTTPClient: trusting(t, cfg.CA),
		Credentials:                credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}
