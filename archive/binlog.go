package archive

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
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
// The file is read whole: the operator caps binary log files
// (max_binlog_size) when it archives, which bounds this.
func (a *Archive) PushBinlog(ctx context.Context, server, path string) (BinlogFile, error) {
	name := filepath.Base(path)
	if _, ok := binlogSeq(name); !ok || strings.ContainsAny(server, "/_") || server == "" {
		return BinlogFile{}, fmt.Errorf("binary log %q of server %q: want a name ending in .<number> and a server without / or _", name, server)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return BinlogFile{}, fmt.Errorf("reading binary log: %w", err)
	}
	span, err := ReadBinlogSpan(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		return BinlogFile{}, fmt.Errorf("binary log %s: %w", path, err)
	}
	if span.End != int64(len(raw)) {
		return BinlogFile{}, fmt.Errorf("binary log %s: its last event is incomplete (at %d of %d bytes): is it still being written?", path, span.End, len(raw))
	}
	key := binlogKey(server, name, span)
	// Another file of this name on this server, with other times, is other
	// content: refuse it before writing anything.
	have, err := a.store.List(ctx, "binlog/"+server+"/"+name+"_")
	if err != nil {
		return BinlogFile{}, err
	}
	for _, o := range have {
		if f, ok := parseBinlogKey(o.Key); ok && f.Name == name && o.Key != key {
			return BinlogFile{}, fmt.Errorf("binary log %s of server %s: %w: archived as %s, which covers other times; refusing a second copy",
				name, server, objectstore.ErrConflict, o.Key)
		}
	}
	packed, err := compress(raw)
	if err != nil {
		return BinlogFile{}, err
	}
	if err := a.store.PutNew(ctx, key, packed); err != nil {
		if errors.Is(err, objectstore.ErrConflict) {
			// Another compressor may pack the same content differently.
			if old, getErr := a.store.Get(ctx, key); getErr == nil {
				if prev, dErr := decompress(old); dErr == nil && bytes.Equal(prev, raw) {
					return a.binlogFile(key, int64(len(packed))), nil
				}
			}
		}
		return BinlogFile{}, fmt.Errorf("binary log %s: %w", name, err)
	}
	return a.binlogFile(key, int64(len(packed))), nil
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

// FetchBinlog writes the archived file f to dest; content that does not
// match what was archived is an error wrapping objectstore.ErrCorrupt.
func (a *Archive) FetchBinlog(ctx context.Context, f BinlogFile, dest string) error {
	packed, err := a.store.Get(ctx, f.key)
	if err != nil {
		return fmt.Errorf("binary log %s of server %s: %w", f.Name, f.Server, err)
	}
	raw, err := decompress(packed)
	if err != nil {
		return fmt.Errorf("binary log %s of server %s: %w: %v", f.Name, f.Server, objectstore.ErrCorrupt, err)
	}
	return writeFileSync(dest, raw, 0o600)
}

// DeleteBinlog removes an archived binary log file.
func (a *Archive) DeleteBinlog(ctx context.Context, f BinlogFile) error {
	return a.store.Delete(ctx, f.key)
}
