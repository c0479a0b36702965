// Package dockerfile checks the operator's Dockerfile without a Docker
// engine: BuildKit's parser reads it, and the test checks the stages, the
// runtime user and base, and that the build command is the Makefile's
// `make build`.
package dockerfile

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

func parse(t *testing.T) []instructions.Stage {
	t.Helper()
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	result, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	stages, _, err := instructions.Parse(result.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile instructions: %v", err)
	}
	return stages
}

func TestStages(t *testing.T) {
	stages := parse(t)
	if len(stages) != 2 {
		t.Fatalf("want a build stage and a runtime stage, got %d stages", len(stages))
	}
	build, runtime := stages[0], stages[1]
	if build.Name != "build" || !strings.HasPrefix(build.BaseName, "golang:1.26") {
		t.Errorf("build stage: want golang:1.26 AS build, got %s AS %s", build.BaseName, build.Name)
	}
	if !strings.HasPrefix(runtime.BaseName, "gcr.io/distroless/static") || !strings.HasSuffix(runtime.BaseName, ":nonroot") {
		t.Errorf("runtime base: want distroless static nonroot, got %s", runtime.BaseName)
	}

	var user string
	var copies []*instructions.CopyCommand
	var entrypoint []string
	for _, cmd := range runtime.Commands {
		switch c := cmd.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.CopyCommand:
			copies = append(copies, c)
		case *instructions.EntrypointCommand:
			entrypoint = c.CmdLine
		case *instructions.RunCommand:
			t.Errorf("the runtime stage runs nothing (distroless has no shell): %v", c.CmdLine)
		}
	}
	if user != "65532:65532" && user != "65532" {
		t.Errorf("runtime user: want 65532, got %q", user)
	}
	if len(copies) != 1 || copies[0].From != "build" ||
		strings.Join(copies[0].SourcePaths, " ") != "/out/database-operator /out/database-agent" || copies[0].DestPath != "/" {
		t.Fatalf("runtime stage must copy exactly the operator and the agent from the build stage to /, got %+v", copies)
	}
	if len(entrypoint) != 1 || entrypoint[0] != "/database-operator" {
		t.Errorf("entrypoint %v must be the copied operator /database-operator", entrypoint)
	}
}

// goBuild returns the words of the `go build` command in a shell command
// line, with the output path and the variables before it removed.
func goBuild(t *testing.T, line string) []string {
	t.Helper()
	words, err := shell.NewLex('\\').ProcessWords(line, shell.EnvsFromSlice(nil))
	if err != nil {
		t.Fatalf("split %q: %v", line, err)
	}
	var out []string
	var env []string
	started := false
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case !started && w == "go" && i+1 < len(words) && words[i+1] == "build":
			started = true
			out = append(out, "go")
		case !started:
			if strings.Contains(w, "=") {
				env = append(env, strings.SplitN(w, "=", 2)[0]+"="+strings.SplitN(w, "=", 2)[1])
			}
		case w == "-o":
			i++ // skip the output path: it differs on purpose
		default:
			out = append(out, w)
		}
	}
	if !started {
		t.Fatalf("no go build in %q", line)
	}
	for _, e := range env {
		if e == "CGO_ENABLED=0" {
			return append([]string{"CGO_ENABLED=0"}, out...)
		}
	}
	return out
}

func TestBuildCommandMatchesMakeBuild(t *testing.T) {
	stages := parse(t)
	var dockerBuild []string
	for _, cmd := range stages[0].Commands {
		if run, ok := cmd.(*instructions.RunCommand); ok && strings.Contains(strings.Join(run.CmdLine, " "), "go build") {
			dockerBuild = goBuild(t, strings.Join(run.CmdLine, " "))
		}
	}
	if dockerBuild == nil {
		t.Fatal("the build stage has no go build")
	}

	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^build:.*\n\t(.*)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("the Makefile has no build target with a one-line recipe")
	}
	makeBuild := goBuild(t, strings.ReplaceAll(string(m[1]), "$(BIN)", "bin"))

	if strings.Join(dockerBuild, " ") != strings.Join(makeBuild, " ") {
		t.Errorf("the Dockerfile builds with\n  %v\nbut make build with\n  %v", dockerBuild, makeBuild)
	}
	want := []string{"CGO_ENABLED=0", "go", "build", "-trimpath", "-ldflags=-s -w", "./cmd/database-operator", "./cmd/database-agent"}
	if strings.Join(makeBuild, "|") != strings.Join(want, "|") {
		t.Errorf("make build: want a static, trimmed build %v, got %v", want, makeBuild)
	}
}
