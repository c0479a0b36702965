package argocdhealth

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
	corev1 "k8s.io/api/core/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the script in argocd-cm.yaml from health.lua")

const (
	argocdDir    = "../../charts/database-operator/argocd"
	checkDir     = argocdDir + "/health/database.example.com/Database"
	scriptPath   = checkDir + "/health.lua"
	configMap    = argocdDir + "/argocd-cm.yaml"
	configMapKey = "resource.customizations.health.database.example.com_Database"
	openLibsKey  = "resource.customizations.useOpenLibs.database.example.com_Database"
)

// healthTests is Argo CD's health_test.yaml format.
type healthTests struct {
	Tests []struct {
		HealthStatus healthStatus `json:"healthStatus"`
		InputPath    string       `json:"inputPath"`
	} `json:"tests"`
}

// healthStatus is what a health script returns (gitops-engine's HealthStatus).
type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// vm is a way of setting up the Lua VM a health script runs in.
type vm struct {
	name string
	// libraries are opened one by one after lua.NewState(SkipOpenLibs: true).
	libraries []library
}

type library struct {
	name string
	open lua.LGFunction
}

var (
	// noLibraries opens nothing at all: not even the base library (pairs,
	// ipairs, tostring, type, error, ...). The strictest VM; the script must
	// pass here.
	noLibraries = vm{name: "no-libraries"}
	// argoCDConfigMap is the VM Argo CD builds for an argocd-cm script whose
	// useOpenLibs is false (util/lua/lua.go, runLua): NewState with
	// SkipOpenLibs, then package, base and table opened anyway, plus Argo CD's
	// own restricted os library, which is left out here (it is Argo CD code).
	// string, math, io, debug, coroutine and channel are missing.
	argoCDConfigMap = vm{name: "argocd-cm", libraries: []library{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	}}
	vms = []vm{noLibraries, argoCDConfigMap}
)

// run executes script with the global obj set to object, as Argo CD does,
// and returns the script's health status.
func (v vm) run(object map[string]any, script string) (healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range v.libraries {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return healthStatus{}, fmt.Errorf("open %s library: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, object))
	if err := l.DoString(script); err != nil {
		return healthStatus{}, err
	}
	returned, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", l.Get(-1).Type())
	}
	var hs healthStatus
	status, ok := returned.RawGetString("status").(lua.LString)
	if !ok {
		return healthStatus{}, fmt.Errorf("status is %s, not a string", returned.RawGetString("status").Type())
	}
	hs.Status = string(status)
	switch message := returned.RawGetString("message").(type) {
	case lua.LString:
		hs.Message = string(message)
	case *lua.LNilType:
	default:
		return healthStatus{}, fmt.Errorf("message is %s, not a string", message.Type())
	}
	switch hs.Status {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		// Argo CD turns this into Unknown "Lua returned an invalid health status".
		return healthStatus{}, fmt.Errorf("invalid health status %q", hs.Status)
	}
	return hs, nil
}

// decodeValue converts an unstructured object to Lua values the way Argo CD's
// util/lua decodeValue does (json.Number becomes a string there too).
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// decoding turns a testdata file into the unstructured object Argo CD sees.
type decoding struct {
	name   string
	decode func([]byte) (map[string]any, error)
}

var decodings = []decoding{
	// Argo CD's own health_test.go reads testdata with sigs.k8s.io/yaml:
	// every number is a float64.
	{"yaml", func(data []byte) (map[string]any, error) {
		var obj map[string]any
		return obj, yaml.Unmarshal(data, &obj)
	}},
	// The application controller holds objects decoded by apimachinery from
	// the API server's JSON: integers are int64.
	{"apiserver", func(data []byte) (map[string]any, error) {
		j, err := yaml.YAMLToJSON(data)
		if err != nil {
			return nil, err
		}
		var obj map[string]any
		return obj, utiljson.Unmarshal(j, &obj)
	}},
}

func readScript(t *testing.T) string {
	t.Helper()
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(script)
}

func readHealthTests(t *testing.T) healthTests {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(checkDir, "health_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tests healthTests
	if err := yaml.UnmarshalStrict(data, &tests); err != nil {
		t.Fatalf("health_test.yaml: %v", err)
	}
	if len(tests.Tests) == 0 {
		t.Fatal("health_test.yaml has no tests")
	}
	return tests
}

// TestHealthScript runs every case of health_test.yaml in each VM and with
// each decoding, and compares status and message exactly.
func TestHealthScript(t *testing.T) {
	script := readScript(t)
	for _, tc := range readHealthTests(t).Tests {
		t.Run(strings.TrimSuffix(filepath.Base(tc.InputPath), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(checkDir, tc.InputPath))
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range decodings {
				for _, v := range vms {
					t.Run(v.name+"/"+d.name, func(t *testing.T) {
						obj, err := d.decode(data)
						if err != nil {
							t.Fatalf("decode %s: %v", tc.InputPath, err)
						}
						got, err := v.run(obj, script)
						if err != nil {
							t.Fatalf("health.lua on %s: %v", tc.InputPath, err)
						}
						if got != tc.HealthStatus {
							t.Errorf("health.lua on %s:\n got %+v\nwant %+v", tc.InputPath, got, tc.HealthStatus)
						}
					})
				}
			}
		})
	}
}

// TestTestdata checks that every testdata file is a full Database used by a
// case, and that every case's input exists.
func TestTestdata(t *testing.T) {
	used := map[string]bool{}
	for _, tc := range readHealthTests(t).Tests {
		if used[tc.InputPath] {
			t.Errorf("health_test.yaml uses %s twice", tc.InputPath)
		}
		used[tc.InputPath] = true
		if !strings.HasPrefix(tc.InputPath, "testdata/") {
			t.Errorf("inputPath %s is not under testdata/", tc.InputPath)
		}
	}
	files, err := filepath.Glob(filepath.Join(checkDir, "testdata", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		rel := "testdata/" + filepath.Base(f)
		if !used[rel] {
			t.Errorf("%s is used by no case of health_test.yaml", rel)
		}
		delete(used, rel)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var db struct {
			APIVersion string         `json:"apiVersion"`
			Kind       string         `json:"kind"`
			Metadata   map[string]any `json:"metadata"`
			Spec       map[string]any `json:"spec"`
		}
		if err := yaml.Unmarshal(data, &db); err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if db.APIVersion != "database.example.com/v1" || db.Kind != "Database" {
			t.Errorf("%s is a %s %s, want a database.example.com/v1 Database", rel, db.APIVersion, db.Kind)
		}
		if db.Metadata["name"] == nil || db.Metadata["namespace"] == nil || db.Metadata["generation"] == nil {
			t.Errorf("%s: metadata needs name, namespace and generation", rel)
		}
		if db.Spec["type"] == nil || db.Spec["version"] == nil || db.Spec["storage"] == nil {
			t.Errorf("%s: spec needs type, version and storage", rel)
		}
	}
	for rel := range used {
		t.Errorf("health_test.yaml names %s, which does not exist", rel)
	}
}

// globals returns the global names a compiled chunk reads and writes,
// nested functions included, from its GETGLOBAL and SETGLOBAL instructions.
// The instruction layout (opcode in the top 6 bits, Bx in the low 18) is
// gopher-lua's (opcode.go).
func globals(t *testing.T, script string) (read, written []string) {
	t.Helper()
	chunk, err := parse.Parse(strings.NewReader(script), "health.lua")
	if err != nil {
		t.Fatal(err)
	}
	proto, err := lua.Compile(chunk, "health.lua")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(*lua.FunctionProto)
	walk = func(p *lua.FunctionProto) {
		for _, inst := range p.Code {
			switch int(inst >> 26) {
			case lua.OP_GETGLOBAL:
				read = append(read, p.Constants[inst&0x3ffff].String())
			case lua.OP_SETGLOBAL:
				written = append(written, p.Constants[inst&0x3ffff].String())
			}
		}
		for _, nested := range p.FunctionPrototypes {
			walk(nested)
		}
	}
	walk(proto)
	slices.Sort(read)
	slices.Sort(written)
	return slices.Compact(read), slices.Compact(written)
}

// TestScriptReadsOnlyObj proves, on every path and not only the ones the
// cases take, that health.lua needs no library: the only global it reads is
// obj, and it sets none.
func TestScriptReadsOnlyObj(t *testing.T) {
	// The analysis itself must see globals, or the check below proves nothing.
	read, written := globals(t, `local s = string.format("%d", #obj); x = tostring(s)`)
	if !slices.Equal(read, []string{"obj", "string", "tostring"}) || !slices.Equal(written, []string{"x"}) {
		t.Fatalf("global analysis is broken: read %v, written %v", read, written)
	}

	read, written = globals(t, readScript(t))
	if !slices.Equal(read, []string{"obj"}) {
		t.Errorf("health.lua reads globals %v, want only obj", read)
	}
	if len(written) > 0 {
		t.Errorf("health.lua sets globals %v; use locals", written)
	}
}

// TestVMsLackLibraries proves the harness really runs without the standard
// libraries: a script that needs one fails, as it does in Argo CD.
func TestVMsLackLibraries(t *testing.T) {
	tests := []struct {
		script string
		// fails lists the VMs in which the script must fail to run.
		fails []string
	}{
		{`return {status = string.format("%s", "Healthy")}`, []string{"no-libraries", "argocd-cm"}},
		{`return {status = "Healthy", message = string.upper("x")}`, []string{"no-libraries", "argocd-cm"}},
		{`return {status = "Healthy", message = "" .. math.floor(1.5)}`, []string{"no-libraries", "argocd-cm"}},
		{`return {status = "Healthy", message = os.getenv("HOME")}`, []string{"no-libraries", "argocd-cm"}},
		{`return {status = "Healthy", message = ("x"):rep(2)}`, []string{"no-libraries", "argocd-cm"}},
		// Argo CD opens the base and table libraries even for argocd-cm
		// scripts; the no-libraries VM has neither.
		{`return {status = "Healthy", message = tostring(1)}`, []string{"no-libraries"}},
		{`for _, c in ipairs(obj.status.conditions) do end return {status = "Healthy"}`, []string{"no-libraries"}},
		{`local n = 0 for k in pairs(obj) do n = n + 1 end return {status = "Healthy"}`, []string{"no-libraries"}},
		{`return {status = "Healthy", message = table.concat({"a", "b"}, ",")}`, []string{"no-libraries"}},
		// Plain syntax works everywhere.
		{`local m = "" for i = 1, #obj.status.conditions do m = m .. obj.status.conditions[i].type .. i end return {status = "Healthy", message = m}`, nil},
	}
	obj := map[string]any{"status": map[string]any{"conditions": []any{map[string]any{"type": "Ready"}}}}
	for _, tc := range tests {
		for _, v := range vms {
			_, err := v.run(obj, tc.script)
			wantFail := slices.Contains(tc.fails, v.name)
			if wantFail && err == nil {
				t.Errorf("%s VM ran %q; it needs a library the VM must not have", v.name, tc.script)
			}
			if !wantFail && err != nil {
				t.Errorf("%s VM failed on %q: %v", v.name, tc.script, err)
			}
		}
	}
}

// TestArgoCDConfigMap checks that the argocd-cm snippet installs exactly
// health.lua, with useOpenLibs off. With -update it rewrites the snippet's
// script from health.lua first.
func TestArgoCDConfigMap(t *testing.T) {
	script := readScript(t)
	data, err := os.ReadFile(configMap)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		header := "  " + configMapKey + ": |\n"
		i := bytes.Index(data, []byte(header))
		if i < 0 {
			t.Fatalf("%s has no line %q", configMap, header)
		}
		var b bytes.Buffer
		b.Write(data[:i+len(header)])
		for _, line := range strings.SplitAfter(script, "\n") {
			if strings.TrimSpace(line) != "" {
				b.WriteString("    ")
			}
			b.WriteString(line)
		}
		data = b.Bytes()
		if err := os.WriteFile(configMap, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(data, &cm); err != nil {
		t.Fatalf("%s: %v", configMap, err)
	}
	if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" || cm.Name != "argocd-cm" {
		t.Errorf("%s is %s %s %s, want v1 ConfigMap argocd-cm", configMap, cm.APIVersion, cm.Kind, cm.Name)
	}
	got, ok := cm.Data[configMapKey]
	if !ok {
		t.Fatalf("%s has no data key %s", configMap, configMapKey)
	}
	if got != script {
		t.Errorf("the script in %s differs from %s; run go test ./internal/argocdhealth -update\n%s",
			configMap, scriptPath, firstDifference(got, script))
	}
	if v, ok := cm.Data[openLibsKey]; ok && v != "false" {
		t.Errorf("%s sets %s=%s; the script needs no library", configMap, openLibsKey, v)
	}
}

// firstDifference describes the first line where got and want differ.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if i >= len(g) || i >= len(w) || gl != wl {
			return fmt.Sprintf("line %d:\n got %q\nwant %q", i+1, gl, wl)
		}
	}
	return "no line differs"
}
