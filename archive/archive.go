package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/example/database-operator/objectstore"
)

// ErrNotArchived is returned when a WAL file is not in the archive: the
// end of the archive for recovery.
var ErrNotArchived = errors.New("not in the archive")

// ErrOwnedByAnother is returned when the archive belongs to another
// Database (another UID): a deleted and re-created Database of the same
// name, or two Databases pointed at the same prefix.
var ErrOwnedByAnother = errors.New("the archive belongs to another Database")

// Archive is one Database's archive.
type Archive struct {
	store *objectstore.Store
}

// New returns the archive of database under store's prefix.
func New(store *objectstore.Store, database string) *Archive {
	return &Archive{store: store.Sub(database)}
}

// Location names the archive for messages: s3://bucket/prefix.
func (a *Archive) Location() string {
	return "s3://" + a.store.Bucket() + "/" + a.store.Prefix()
}

// Owner is the Database that archives into an archive. Restores read the
// application user and database names from it, to give them the restored
// Database's names.
type Owner struct {
	// UID is the Database object's metadata.uid.
	UID string `json:"uid"`
	// Namespace and Name are the Database's.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Engine is postgresql or mysql.
	Engine string `json:"engine"`
	// AppUser and AppDatabase are the application user and database.
	AppUser     string `json:"appUser,omitempty"`
	AppDatabase string `json:"appDatabase,omitempty"`
}

const ownerKey = "owner"

// Claim records o as the archive's owner, or confirms that it is. An
// archive owned by another UID is ErrOwnedByAnother: archiving into it would
// mix two histories.
func (a *Archive) Claim(ctx context.Context, o Owner) error {
	have, err := a.Owner(ctx)
	switch {
	case errors.Is(err, objectstore.ErrNotFound):
		data, err := json.Marshal(o)
		if err != nil {
			return err
		}
		return a.store.Put(ctx, ownerKey, data)
	case err != nil:
		return err
	case have.UID != o.UID:
		return fmt.Errorf("%s: %w (%s/%s, uid %s); archive a new Database elsewhere (another path or bucket), or move the old archive away",
			a.Location(), ErrOwnedByAnother, have.Namespace, have.Name, have.UID)
	}
	return nil
}

// Owner reads the archive's owner record.
func (a *Archive) Owner(ctx context.Context) (Owner, error) {
	data, err := a.store.Get(ctx, ownerKey)
	if err != nil {
		return Owner{}, err
	}
	var o Owner
	if err := json.Unmarshal(data, &o); err != nil {
		return Owner{}, fmt.Errorf("%s/%s: %w", a.Location(), ownerKey, err)
	}
	return o, nil
}

func walKey(name string) string { return "wal/" + name + ".gz" }

// PushWAL archives the file at path (a WAL segment, history, .partial or
// .backup file from pg_wal), compressed. A file archived before with the
// same content is success, as PostgreSQL requires of an archive command
// retried after a crash; different content is an error and the archived
// file is kept.
func (a *Archive) PushWAL(ctx context.Context, path string) error {
	name := filepath.Base(path)
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading WAL file: %w", err)
	}
	packed, err := compress(raw)
	if err != nil {
		return err
	}
	err = a.store.PutNew(ctx, walKey(name), packed)
	if !errors.Is(err, objectstore.ErrConflict) {
		return err
	}
	// Another version of the compressor may have packed the same content
	// differently: compare what was archived, not how.
	have, getErr := a.fetch(ctx, name)
	if getErr == nil && bytes.Equal(have, raw) {
		return nil
	}
	return fmt.Errorf("WAL file %s: %w: refusing to overwrite the archived copy", name, err)
}

// FetchWAL restores the archived file name to dest, as a restore_command
// does: ErrNotArchived when it is not there, an error wrapping
// objectstore.ErrCorrupt when its content does not match what was archived.
func (a *Archive) FetchWAL(ctx context.Context, name, dest string) error {
	raw, err := a.fetch(ctx, name)
	if err != nil {
		return err
	}
	if _, _, isSegment := ParseSegmentName(name); isSegment && len(raw) != SegmentSize {
		return fmt.Errorf("WAL segment %s: %w: %d bytes, want %d", name, objectstore.ErrCorrupt, len(raw), SegmentSize)
	}
	tmp := dest + ".fetching"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	return os.Rename(tmp, dest)
}

func (a *Archive) fetch(ctx context.Context, name string) ([]byte, error) {
	packed, err := a.store.Get(ctx, walKey(name))
	if errors.Is(err, objectstore.ErrNotFound) {
		return nil, fmt.Errorf("WAL file %s: %w", name, ErrNotArchived)
	}
	if err != nil {
		return nil, err
	}
	raw, err := decompress(packed)
	if err != nil {
		return nil, fmt.Errorf("WAL file %s: %w: %v", name, objectstore.ErrCorrupt, err)
	}
	return raw, nil
}

// WALFile is one archived WAL file.
type WALFile struct {
	// Name is the file's name in pg_wal.
	Name string
	// Size is its compressed size.
	Size int64
	// Archived is when the object store received it.
	Archived objectstore.Object
}

// ListWAL lists the archived WAL files in name order (which is timeline,
// then segment order).
func (a *Archive) ListWAL(ctx context.Context) ([]WALFile, error) {
	objects, err := a.store.List(ctx, "wal/")
	if err != nil {
		return nil, err
	}
	var out []WALFile
	for _, o := range objects {
		name := strings.TrimSuffix(strings.TrimPrefix(o.Key, "wal/"), ".gz")
		out = append(out, WALFile{Name: name, Size: o.Size, Archived: o})
	}
	return out, nil
}

// compress gzips data deterministically (no name, no time), so the same
// segment pushed twice is the same object.
func compress(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decompress(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return io.ReadAll(zr)
}
