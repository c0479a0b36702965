// Command mkimage turns a root filesystem directory into a one-layer OCI image
// layout archive that `ctr -n k8s.io images import FILE` accepts.
//
// It exists because the real-pod cluster (e2e/realcluster) has no registry and
// no Docker: its images are directories built by build.sh (debootstrap plus
// packages, or a static binary and a few files), and containerd only takes
// them as an image archive. The archive is an OCI image layout (oci-layout,
// index.json, blobs/sha256/...) packed as a plain tar; the index's one
// manifest carries the image reference in both the containerd annotation
// (io.containerd.image.name) and the OCI one (org.opencontainers.image.ref.name),
// so the import names the image exactly as pods refer to it.
//
// The layer is made by GNU tar (--numeric-owner --xattrs), not archive/tar,
// so that uids and gids, device nodes, setuid bits, hard links and extended
// attributes survive exactly as they are on disk; the layer is left
// uncompressed (a local import gains nothing from compression). Digests are
// computed here. The created time is fixed (SOURCE_DATE_EPOCH, else the Unix
// epoch) and JSON is written in a fixed order, so the same directory gives
// the same config and manifest.
//
//	go run ./e2e/realcluster/images/mkimage -rootfs DIR -ref docker.io/library/postgres:15 \
//	    -o postgres-15.tar -entrypoint '["docker-entrypoint.sh"]' -cmd '["postgres"]' \
//	    -user 999:999 -env PGDATA=/var/lib/postgresql/data -stop-signal SIGINT
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	rootfs, ref, out          string
	entrypoint, cmd           []string
	user, workdir, stopSignal string
	env                       []string
	labels                    map[string]string
	arch, osName              string
	created                   time.Time
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(2)
	}
	digest, size, err := build(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s layer %d bytes -> %s\n", opts.ref, digest, size, opts.out)
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	var (
		o               options
		entrypoint, cmd string
		env, labels     listFlag
	)
	fs.StringVar(&o.rootfs, "rootfs", "", "root filesystem directory to pack as the image's only layer (required)")
	fs.StringVar(&o.ref, "ref", "", "image reference to annotate, e.g. docker.io/library/postgres:15 (required)")
	fs.StringVar(&o.out, "o", "", "output archive path (required)")
	fs.StringVar(&entrypoint, "entrypoint", "", `entrypoint as a JSON array, e.g. '["/pause"]'`)
	fs.StringVar(&cmd, "cmd", "", `command as a JSON array, e.g. '["postgres"]'`)
	fs.StringVar(&o.user, "user", "", "user[:group] the container runs as")
	fs.StringVar(&o.workdir, "workdir", "/", "working directory")
	fs.StringVar(&o.stopSignal, "stop-signal", "", "signal that stops the container, e.g. SIGINT")
	fs.Var(&env, "env", "KEY=VALUE environment entry (repeatable); a PATH default is added unless one is given")
	fs.Var(&labels, "label", "KEY=VALUE image label (repeatable)")
	fs.StringVar(&o.arch, "arch", runtime.GOARCH, "image architecture")
	fs.StringVar(&o.osName, "os", "linux", "image operating system")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q (everything is a flag)", fs.Args())
	}
	if o.rootfs == "" || o.ref == "" || o.out == "" {
		return nil, errors.New("-rootfs, -ref and -o are required")
	}
	var err error
	if o.entrypoint, err = jsonList("entrypoint", entrypoint); err != nil {
		return nil, err
	}
	if o.cmd, err = jsonList("cmd", cmd); err != nil {
		return nil, err
	}
	hasPath := false
	for _, e := range env {
		if !strings.Contains(e, "=") {
			return nil, fmt.Errorf("-env %q: want KEY=VALUE", e)
		}
		hasPath = hasPath || strings.HasPrefix(e, "PATH=")
	}
	if !hasPath {
		o.env = append(o.env, defaultPath)
	}
	o.env = append(o.env, env...)
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-label %q: want KEY=VALUE", l)
		}
		if o.labels == nil {
			o.labels = map[string]string{}
		}
		o.labels[k] = v
	}
	o.created = time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %v", s, err)
		}
		o.created = time.Unix(sec, 0).UTC()
	}
	return &o, nil
}

func jsonList(name, s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("-%s %q: want a JSON array of strings: %v", name, s, err)
	}
	return l, nil
}

// The OCI image spec's documents, with only the fields this image uses; the
// field order is the order they are written in.
type (
	descriptor struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Platform    *platform         `json:"platform,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	platform struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	}
	imageConfig struct {
		User       string            `json:"User,omitempty"`
		Env        []string          `json:"Env,omitempty"`
		Entrypoint []string          `json:"Entrypoint,omitempty"`
		Cmd        []string          `json:"Cmd,omitempty"`
		WorkingDir string            `json:"WorkingDir,omitempty"`
		Labels     map[string]string `json:"Labels,omitempty"`
		StopSignal string            `json:"StopSignal,omitempty"`
	}
	configFile struct {
		Created      string      `json:"created"`
		Architecture string      `json:"architecture"`
		OS           string      `json:"os"`
		Config       imageConfig `json:"config"`
		RootFS       struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
		History []history `json:"history"`
	}
	history struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
	}
	manifest struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}
	index struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}
)

const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// build writes the archive and returns the manifest digest and layer size.
func build(o *options) (string, int64, error) {
	if fi, err := os.Stat(o.rootfs); err != nil || !fi.IsDir() {
		return "", 0, fmt.Errorf("-rootfs %s: not a directory", o.rootfs)
	}
	outDir := filepath.Dir(o.out)
	tmp, err := os.MkdirTemp(outDir, ".mkimage-")
	if err != nil {
		return "", 0, err
	}
	defer os.RemoveAll(tmp)

	// The layer: GNU tar keeps owners numeric and records xattrs (which makes
	// it a pax archive). For the same tree to give the same layer, members
	// are sorted by name and the pax records leave out access and change
	// times (they change on every read).
	layerPath := filepath.Join(tmp, "layer.tar")
	tarCmd := exec.Command("tar", "--numeric-owner", "--xattrs", "--sort=name",
		"--pax-option=delete=atime,delete=ctime", "-C", o.rootfs, "-cf", layerPath, ".")
	tarCmd.Stdout, tarCmd.Stderr = os.Stderr, os.Stderr
	if err := tarCmd.Run(); err != nil {
		return "", 0, fmt.Errorf("tar of %s: %v", o.rootfs, err)
	}
	layerDigest, layerSize, err := fileDigest(layerPath)
	if err != nil {
		return "", 0, err
	}

	created := o.created.Format(time.RFC3339)
	var cfg configFile
	cfg.Created, cfg.Architecture, cfg.OS = created, o.arch, o.osName
	cfg.Config = imageConfig{
		User: o.user, Env: o.env, Entrypoint: o.entrypoint, Cmd: o.cmd,
		WorkingDir: o.workdir, Labels: o.labels, StopSignal: o.stopSignal,
	}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{layerDigest}
	cfg.History = []history{{Created: created, CreatedBy: "mkimage (e2e/realcluster/images): one layer from a directory"}}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return "", 0, err
	}
	man := manifest{
		SchemaVersion: 2, MediaType: mediaManifest,
		Config: descriptor{MediaType: mediaConfig, Digest: bytesDigest(cfgJSON), Size: int64(len(cfgJSON))},
		Layers: []descriptor{{MediaType: mediaLayer, Digest: layerDigest, Size: layerSize}},
	}
	manJSON, err := json.Marshal(man)
	if err != nil {
		return "", 0, err
	}
	manDigest := bytesDigest(manJSON)
	idx := index{SchemaVersion: 2, MediaType: mediaIndex, Manifests: []descriptor{{
		MediaType: mediaManifest, Digest: manDigest, Size: int64(len(manJSON)),
		Platform: &platform{Architecture: o.arch, OS: o.osName},
		Annotations: map[string]string{
			"io.containerd.image.name":          o.ref,
			"org.opencontainers.image.ref.name": o.ref,
		},
	}}}
	idxJSON, err := json.Marshal(idx)
	if err != nil {
		return "", 0, err
	}

	// The archive, written beside the target and renamed into place, so a
	// failed run never leaves a truncated archive under the final name.
	partial := filepath.Join(tmp, "image.tar")
	f, err := os.Create(partial)
	if err != nil {
		return "", 0, err
	}
	tw := tar.NewWriter(f)
	add := func(name string, data []byte) error {
		return addEntry(tw, name, int64(len(data)), o.created, bytes.NewReader(data))
	}
	err = errors.Join(
		addDir(tw, "blobs/", o.created),
		addDir(tw, "blobs/sha256/", o.created),
		add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)),
		add("index.json", idxJSON),
		add(blobName(cfgJSON), cfgJSON),
		add(blobName(manJSON), manJSON),
	)
	if err == nil {
		err = addFile(tw, "blobs/sha256/"+strings.TrimPrefix(layerDigest, "sha256:"), layerPath, layerSize, o.created)
	}
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("writing %s: %v", o.out, err)
	}
	if err := os.Rename(partial, o.out); err != nil {
		return "", 0, err
	}
	return manDigest, layerSize, nil
}

func bytesDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobName(b []byte) string {
	return "blobs/sha256/" + strings.TrimPrefix(bytesDigest(b), "sha256:")
}

func fileDigest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

func addDir(tw *tar.Writer, name string, mtime time.Time) error {
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX})
}

func addEntry(tw *tar.Writer, name string, size int64, mtime time.Time, r io.Reader) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: mtime, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := io.Copy(tw, r)
	return err
}

func addFile(tw *tar.Writer, name, path string, size int64, mtime time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return addEntry(tw, name, size, mtime, f)
}
