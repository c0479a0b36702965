package objectstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// DefaultPartSize is the size of a multipart upload's parts: S3 allows
// 10,000 parts, so a stream may be up to 320 GiB.
const DefaultPartSize = 32 << 20

// uploadsInFlight is how many parts are sent at once: one in flight while
// the next is read keeps a single stream's upload busy without holding more
// than three parts in memory.
const uploadsInFlight = 2

// Info describes a stream that was written.
type Info struct {
	// Size is the number of bytes written.
	Size int64
	// SHA256 is the hex SHA-256 of the content.
	SHA256 string
}

// PutStream writes everything r yields to key, as one object, in a
// multipart upload of partSize parts (DefaultPartSize when 0) once the
// stream is longer than one part. The object appears only when the stream
// ended without error; otherwise the upload is aborted. The returned Info
// is what a reader of Open checks the content against.
func (s *Store) PutStream(ctx context.Context, key string, r io.Reader, partSize int) (Info, error) {
	if partSize <= 0 {
		partSize = DefaultPartSize
	}
	sum := sha256.New()
	first, err := readPart(r, sum, partSize)
	if err != nil {
		return Info{}, fmt.Errorf("reading the stream for s3://%s/%s: %w", s.bucket, s.key(key), err)
	}
	if len(first) < partSize {
		if err := s.Put(ctx, key, first); err != nil {
			return Info{}, err
		}
		return Info{Size: int64(len(first)), SHA256: hex.EncodeToString(sum.Sum(nil))}, nil
	}
	return s.multipart(ctx, key, first, r, sum, partSize)
}

func (s *Store) multipart(ctx context.Context, key string, first []byte, r io.Reader, sum hash.Hash, partSize int) (Info, error) {
	full := s.key(key)
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(s.bucket), Key: aws.String(full)})
	if err != nil {
		return Info{}, fmt.Errorf("starting the upload of s3://%s/%s: %w", s.bucket, full, err)
	}
	uploadID := created.UploadId
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu       sync.Mutex
		parts    []types.CompletedPart
		firstErr error
		wg       sync.WaitGroup
		slots    = make(chan struct{}, uploadsInFlight)
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return firstErr != nil }
	size := int64(0)
	part := first
	for number := int32(1); len(part) > 0 && !failed(); number++ {
		if number > 10000 {
			fail(fmt.Errorf("the stream is larger than 10,000 parts of %d bytes", partSize))
			break
		}
		size += int64(len(part))
		slots <- struct{}{}
		wg.Add(1)
		go func(number int32, data []byte) {
			defer wg.Done()
			defer func() { <-slots }()
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket: aws.String(s.bucket), Key: aws.String(full), UploadId: uploadID,
				PartNumber: aws.Int32(number), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
			})
			if err != nil {
				fail(fmt.Errorf("uploading part %d of s3://%s/%s: %w", number, s.bucket, full, err))
				return
			}
			mu.Lock()
			parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(number)})
			mu.Unlock()
		}(number, part)
		if len(part) < partSize {
			break
		}
		part, err = readPart(r, sum, partSize)
		if err != nil {
			fail(fmt.Errorf("reading the stream for s3://%s/%s: %w", s.bucket, full, err))
		}
	}
	wg.Wait()
	if firstErr == nil {
		sort.Slice(parts, func(i, j int) bool { return *parts[i].PartNumber < *parts[j].PartNumber })
		_, firstErr = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: aws.String(s.bucket), Key: aws.String(full), UploadId: uploadID,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		if firstErr == nil {
			return Info{Size: size, SHA256: hex.EncodeToString(sum.Sum(nil))}, nil
		}
		firstErr = fmt.Errorf("completing the upload of s3://%s/%s: %w", s.bucket, full, firstErr)
	}
	// The caller's context may be what failed: abort on a fresh one, so the
	// store does not keep the parts.
	_, abortErr := s.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: aws.String(s.bucket), Key: aws.String(full), UploadId: uploadID})
	return Info{}, errors.Join(firstErr, abortErr)
}

// readPart reads up to n bytes; fewer only at the end of the stream.
func readPart(r io.Reader, sum hash.Hash, n int) ([]byte, error) {
	buf := make([]byte, n)
	got, err := io.ReadFull(r, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	sum.Write(buf[:got])
	return buf[:got], err
}

// VerifyingReader returns r's content and, at its end, an error wrapping
// ErrCorrupt unless it had exactly info's size and SHA-256.
func VerifyingReader(r io.Reader, info Info) io.Reader {
	return &verifyingReader{r: r, want: info, sum: sha256.New()}
}

type verifyingReader struct {
	r    io.Reader
	want Info
	sum  hash.Hash
	n    int64
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.sum.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		if got := hex.EncodeToString(v.sum.Sum(nil)); v.n != v.want.Size || got != v.want.SHA256 {
			return n, fmt.Errorf("%w: read %d bytes with sha256 %s, recorded %d bytes with %s", ErrCorrupt, v.n, got, v.want.Size, v.want.SHA256)
		}
	}
	return n, err
}
