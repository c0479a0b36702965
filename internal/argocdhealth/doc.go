// Package argocdhealth holds the tests of the Argo CD health check for
// Databases, which lives in Argo CD's own layout under
// charts/database-operator/argocd/health/database.example.com/Database
// (health.lua, health_test.yaml, testdata/*.yaml).
//
// The tests run every case of health_test.yaml in gopher-lua the way Argo CD
// runs a health script from argocd-cm: with the Lua standard libraries off.
// They also prove the script reads no global but obj, and keep the argocd-cm
// snippet (charts/database-operator/argocd/argocd-cm.yaml) byte-identical to
// health.lua; `go test ./internal/argocdhealth -update` rewrites the snippet
// from health.lua. The package has no non-test code.
package argocdhealth
