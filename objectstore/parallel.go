package objectstore

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DefaultChunkSize and DefaultChunksInFlight shape OpenParallel: four
// ranged requests of 16 MiB at a time keep a restore's download ahead of
// its extraction, in at most 80 MiB of memory.
const (
	DefaultChunkSize      = 16 << 20
	DefaultChunksInFlight = 4
)

// OpenParallel streams key, size bytes long, with up to inFlight ranged GET
// requests of chunk bytes at once, delivered in order: one stream of one
// request is bound by one connection's round trips, which a large object
// (a base backup) feels. The caller verifies the content as with Open.
func (s *Store) OpenParallel(ctx context.Context, key string, size int64, chunk, inFlight int) io.ReadCloser {
	if chunk <= 0 {
		chunk = DefaultChunkSize
	}
	if inFlight <= 0 {
		inFlight = DefaultChunksInFlight
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &parallelReader{cancel: cancel, results: make(chan chan chunkResult, inFlight-1)}
	go func() {
		defer close(p.results)
		for off := int64(0); off < size; off += int64(chunk) {
			end := min(off+int64(chunk), size) - 1
			res := make(chan chunkResult, 1)
			select {
			case p.results <- res:
			case <-ctx.Done():
				return
			}
			go func(off, end int64) { res <- s.getRange(ctx, key, off, end) }(off, end)
		}
	}()
	return p
}

type chunkResult struct {
	data []byte
	err  error
}

type parallelReader struct {
	cancel  context.CancelFunc
	results chan chan chunkResult
	current *bytes.Reader
	err     error
}

func (p *parallelReader) Read(b []byte) (int, error) {
	for {
		if p.err != nil {
			return 0, p.err
		}
		if p.current != nil && p.current.Len() > 0 {
			return p.current.Read(b)
		}
		res, ok := <-p.results
		if !ok {
			p.err = io.EOF
			continue
		}
		r := <-res
		if r.err != nil {
			p.err = r.err
			continue
		}
		p.current = bytes.NewReader(r.data)
	}
}

// Close stops the requests still running.
func (p *parallelReader) Close() error {
	p.cancel()
	for res := range p.results {
		<-res
	}
	return nil
}

// getRange reads bytes off to end (inclusive) of key.
func (s *Store) getRange(ctx context.Context, key string, off, end int64) chunkResult {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(key)),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, end))})
	if err != nil {
		return chunkResult{err: s.wrap("reading", key, err)}
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return chunkResult{err: s.wrap("reading", key, err)}
	}
	if int64(len(data)) != end-off+1 {
		return chunkResult{err: fmt.Errorf("reading s3://%s/%s: bytes %d-%d: got %d bytes", s.bucket, s.key(key), off, end, len(data))}
	}
	return chunkResult{data: data}
}
