package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuild packs a small tree and checks that the archive is a consistent
// OCI layout: every digest matches its blob, the reference is annotated, the
// config carries the flags, and the layer holds the tree. A second build
// must give the same bytes.
func TestBuild(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "hello"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	out := filepath.Join(dir, "image.tar")
	opts, err := parseFlags([]string{
		"-rootfs", root, "-ref", "example.com/hello:1", "-o", out,
		"-entrypoint", `["/bin/hello"]`, "-cmd", `["x"]`, "-user", "65532:65532",
		"-env", "A=b", "-stop-signal", "SIGINT", "-label", "k=v", "-workdir", "/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	digest, _, err := build(opts)
	if err != nil {
		t.Fatal(err)
	}

	files := readTar(t, out)
	for name, data := range files {
		if hexDigest, ok := strings.CutPrefix(name, "blobs/sha256/"); ok && hexDigest != "" {
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != hexDigest {
				t.Errorf("blob %s: content digest differs", name)
			}
		}
	}
	var idx index
	mustJSON(t, files["index.json"], &idx)
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != digest {
		t.Fatalf("index: %+v, want one manifest %s", idx, digest)
	}
	for _, k := range []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"} {
		if got := idx.Manifests[0].Annotations[k]; got != "example.com/hello:1" {
			t.Errorf("annotation %s = %q", k, got)
		}
	}
	var man manifest
	mustJSON(t, blob(t, files, digest), &man)
	var cfg configFile
	mustJSON(t, blob(t, files, man.Config.Digest), &cfg)
	c := cfg.Config
	if c.User != "65532:65532" || c.StopSignal != "SIGINT" || c.WorkingDir != "/bin" ||
		strings.Join(c.Entrypoint, " ") != "/bin/hello" || strings.Join(c.Cmd, " ") != "x" ||
		c.Labels["k"] != "v" || len(c.Env) != 2 || !strings.HasPrefix(c.Env[0], "PATH=") || c.Env[1] != "A=b" {
		t.Errorf("config: %+v", c)
	}
	if cfg.Created != "2023-11-14T22:13:20Z" {
		t.Errorf("created = %s, want SOURCE_DATE_EPOCH", cfg.Created)
	}
	if len(man.Layers) != 1 || cfg.RootFS.DiffIDs[0] != man.Layers[0].Digest {
		t.Fatalf("layers %+v, diff_ids %v", man.Layers, cfg.RootFS.DiffIDs)
	}
	layer := readTarBytes(t, blob(t, files, man.Layers[0].Digest))
	if string(layer["./bin/hello"]) != "#!/bin/sh\necho hi\n" {
		t.Errorf("layer: %v", keys(layer))
	}

	first, _ := os.ReadFile(out)
	if _, _, err := build(opts); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(out)
	if string(first) != string(second) {
		t.Error("a second build of the same tree gave different bytes")
	}
}

func TestFlagsRejectPositional(t *testing.T) {
	if _, err := parseFlags([]string{"-rootfs", "a", "-ref", "b", "-o", "c", "extra"}); err == nil {
		t.Error("positional argument accepted")
	}
	if _, err := parseFlags([]string{"-rootfs", "a", "-ref", "b", "-o", "c", "-cmd", "postgres"}); err == nil {
		t.Error("-cmd that is not JSON accepted")
	}
}

func blob(t *testing.T, files map[string][]byte, digest string) []byte {
	t.Helper()
	b, ok := files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
	if !ok {
		t.Fatalf("no blob %s", digest)
	}
	return b
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func readTar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return readTarBytes(t, b)
}

func readTarBytes(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(strings.NewReader(string(b)))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = data
	}
}

func keys(m map[string][]byte) []string {
	var l []string
	for k := range m {
		l = append(l, k)
	}
	return l
}
