package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/example/database-operator/objectstore"
)

// MySQL's continuous archiving ships the primary's closed binary log files
// (package agent). Each is stored compressed under
// binlog/<server>/<name>_<first>_<last>.gz, where server is the server's
// identity (@@server_uuid), name the file's name (binlog.000042) and first
// and last the Unix times of its first and last events: a listing alone
// says which files a restore to a moment needs and which retention may
// delete, without reading any of them.

// binlogMagic starts every binary log file (MySQL and MariaDB).
var binlogMagic = []byte{0xfe, 'b', 'i', 'n'}

// binlogHeaderSize is the size of an event's common header: timestamp (4),
// type (1), server id (4), event size (4), next position (4), flags (2).
const binlogHeaderSize = 19

// BinlogSpan is what a binary log file covers.
type BinlogSpan struct {
	// First and Last are the timestamps of its first and last complete
	// events, to the second (the resolution of the binary log).
	First, Last time.Time
	// End is the offset after its last complete event.
	End int64
	// Transactions says it holds a transaction or statement, not only the
	// events every file starts with.
	Transactions bool
}

// Event types that start a transaction or are a statement: QUERY_EVENT,
// MySQL's GTID_LOG_EVENT and ANONYMOUS_GTID_LOG_EVENT, MariaDB's
// GTID_EVENT.
var transactionEvents = map[byte]bool{2: true, 33: true, 34: true, 162: true}

// ReadBinlogSpan reads the event headers of a binary log file. A file
// whose last event is incomplete (still being written) spans its complete
// events.
func ReadBinlogSpan(r io.ReaderAt, size int64) (BinlogSpan, error) {
	var span BinlogSpan
	magic := make([]byte, len(binlogMagic))
	if _, err := r.ReadAt(magic, 0); err != nil || !bytes.Equal(magic, binlogMagic) {
		return span, fmt.Errorf("not a binary log file (no magic number)")
	}
	header := make([]byte, binlogHeaderSize)
	off := int64(len(binlogMagic))
	for off+binlogHeaderSize <= size {
		if _, err := r.ReadAt(header, off); err != nil {
			return span, fmt.Errorf("reading the event at %d: %w", off, err)
		}
		eventSize := int64(binary.LittleEndian.Uint32(header[9:13]))
		if eventSize < binlogHeaderSize {
			return span, fmt.Errorf("event at %d: size %d is less than a header", off, eventSize)
		}
		if off+eventSize > size {
			break
		}
		if transactionEvents[header[4]] {
			span.Transactions = true
		}
		if ts := binary.LittleEndian.Uint32(header[0:4]); ts != 0 {
			t := time.Unix(int64(ts), 0).UTC()
			if span.First.IsZero() {
				span.First = t
			}
			if t.After(span.Last) {
				span.Last = t
			}
		}
		off += eventSize
	}
	span.End = off
	if span.First.IsZero() {
		return span, fmt.Errorf("no complete event")
	}
	return span, nil
}

// BinlogFile is one archived binary log file.
type BinlogFile struct {
	// Server is the identity of the server that wrote it.
	Server string
	// Name is its name on that server (binlog.000042) and Seq the number
	// in it.
	Name string
	Seq  uint64
	// First and Last are the times of its first and last events.
	First, Last time.Time
	// Size is its compressed size.
	Size int64
	key  string
}

// binlogSeq is the sequence number in a binary log file's name, the digits
// after its last dot.
func binlogSeq(name string) (uint64, bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 || i == len(name)-1 {
		return 0, false
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	return n, err == nil
}

func binlogKey(server, name string, span BinlogSpan) string {
	return fmt.Sprintf("binlog/%s/%s_%d_%d.gz", server, name, span.First.Unix(), span.Last.Unix())
}

// parseBinlogKey reads a key binlogKey wrote; false for any other.
func parseBinlogKey(key string) (BinlogFile, bool) {
	rest, ok := strings.CutPrefix(key, "binlog/")
	if !ok {
		return BinlogFile{}, false
	}
	server, file, ok := strings.Cut(rest, "/")
	if !ok || server == "" {
		return BinlogFile{}, false
	}
	file, ok = strings.CutSuffix(file, ".gz")
	parts := strings.Split(file, "_")
	if !ok || len(parts) < 3 {
		return BinlogFile{}, false
	}
	last, err1 := strconv.ParseInt(parts[len(parts)-1], 10, 64)
	first, err2 := strconv.ParseInt(parts[len(parts)-2], 10, 64)
	name := strings.Join(parts[:len(parts)-2], "_")
	seq, ok := binlogSeq(name)
	if err1 != nil || err2 != nil || !ok {
		return BinlogFile{}, false
	}
	return BinlogFile{Server: server, Name: name, Seq: seq, First: time.Unix(first, 0).UTC(), Last: time.Unix(last, 0).UTC(), key: key}, true
}

// PushBinlog archives the closed binary log file at path, written by
// server. A file archived before with the same content is success (a retry
// after a crash); a file of the same name with other content is an error
// wrapping objectstore.ErrConflict, and the archived copy is kept: a server
// whose binary logs were reset must ship under a new identity.
//
// The file is streamed, compressed, to a multipart upload: MySQL never
// splits a transaction, so one large transaction makes a file larger than
// max_binlog_size, and the agent that ships it is the database container's
// PID 1.
func (a *Archive) PushBinlog(ctx context.Context, server, path string) (BinlogFile, error) {
	name := filepath.Base(path)
	if _, ok := binlogSeq(name); !ok || strings.ContainsAny(server, "/_") || server == "" {
		return BinlogFile{}, fmt.Errorf("binary log %q of server %q: want a name ending in .<number> and a server without / or _", name, server)
	}
	f, err := os.Open(path)
	if err != nil {
		return BinlogFile{}, fmt.Errorf("reading binary log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return BinlogFile{}, err
	}
	span, err := ReadBinlogSpan(f, st.Size())
	if err != nil {
		return BinlogFile{}, fmt.Errorf("binary log %s: %w", path, err)
	}
	if span.End != st.Size() {
		return BinlogFile{}, fmt.Errorf("binary log %s: its last event is incomplete (at %d of %d bytes): is it still being written?", path, span.End, st.Size())
	}
	key := binlogKey(server, name, span)
	have, err := a.store.List(ctx, "binlog/"+server+"/"+name+"_")
	if err != nil {
		return BinlogFile{}, err
	}
	for _, o := range have {
		other, ok := parseBinlogKey(o.Key)
		if !ok || other.Name != name {
			continue
		}
		// Another copy with other times is other content; one with the
		// same times is compared, not trusted.
		if o.Key == key {
			same, err := a.sameBinlog(ctx, key, io.NewSectionReader(f, 0, st.Size()))
			if err != nil {
				return BinlogFile{}, err
			}
			if same {
				return a.binlogFile(key, o.Size), nil
			}
		}
		return BinlogFile{}, fmt.Errorf("binary log %s of server %s: %w: archived as %s with other content; refusing a second copy",
			name, server, objectstore.ErrConflict, o.Key)
	}
	pr := gzipPipe(io.NewSectionReader(f, 0, st.Size()))
	info, err := a.store.PutStream(ctx, key, pr, 0)
	pr.CloseWithError(err) // unblocks the compressor if the upload stopped reading
	if err != nil {
		return BinlogFile{}, fmt.Errorf("binary log %s: %w", name, err)
	}
	return a.binlogFile(key, info.Size), nil
}

// sameBinlog says whether the archived object key holds what local holds,
// comparing SHA-256s of the decompressed streams.
func (a *Archive) sameBinlog(ctx context.Context, key string, local io.Reader) (bool, error) {
	r, err := a.openBinlog(ctx, key)
	if err != nil {
		return false, err
	}
	defer r.Close()
	archived, local256 := sha256.New(), sha256.New()
	if _, err := io.Copy(archived, r); err != nil {
		return false, fmt.Errorf("reading %s: %w", key, err)
	}
	if _, err := io.Copy(local256, local); err != nil {
		return false, err
	}
	return bytes.Equal(archived.Sum(nil), local256.Sum(nil)), nil
}

// openBinlog streams an archived file decompressed; a stream that does not
// decompress whole (gzip's CRC-32 and length) fails with
// objectstore.ErrCorrupt.
func (a *Archive) openBinlog(ctx context.Context, key string) (io.ReadCloser, error) {
	body, err := a.store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(body)
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("%s: %w: %v", key, objectstore.ErrCorrupt, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{corruptOnError{zr, key}, body}, nil
}

// corruptOnError marks read errors of a decompressing stream as
// objectstore.ErrCorrupt.
type corruptOnError struct {
	r   io.Reader
	key string
}

func (c corruptOnError) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w: %v", c.key, objectstore.ErrCorrupt, err)
	}
	return n, err
}

func (a *Archive) binlogFile(key string, size int64) BinlogFile {
	f, _ := parseBinlogKey(key)
	f.Size = size
	return f
}

// ListBinlogs lists the archived binary log files of every server, each
// server's in sequence order.
func (a *Archive) ListBinlogs(ctx context.Context) ([]BinlogFile, error) {
	objects, err := a.store.List(ctx, "binlog/")
	if err != nil {
		return nil, err
	}
	var out []BinlogFile
	for _, o := range objects {
		if f, ok := parseBinlogKey(o.Key); ok {
			f.Size = o.Size
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Server != out[j].Server {
			return out[i].Server < out[j].Server
		}
		return out[i].Seq < out[j].Seq
	})
	return out, nil
}

// FetchBinlog writes the archived file f to dest, streamed; content that
// does not decompress whole is an error wrapping objectstore.ErrCorrupt.
func (a *Archive) FetchBinlog(ctx context.Context, f BinlogFile, dest string) error {
	r, err := a.openBinlog(ctx, f.key)
	if err != nil {
		return fmt.Errorf("binary log %s of server %s: %w", f.Name, f.Server, err)
	}
	defer r.Close()
	out, err := os.OpenFile(dest, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("binary log %s of server %s: %w", f.Name, f.Server, err)
	}
	return out.Close()
}

// DeleteBinlog removes an archived binary log file.
func (a *Archive) DeleteBinlog(ctx context.Context, f BinlogFile) error {
	return a.store.Delete(ctx, f.key)
}
