package enginetest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	databasev1 "github.com/example/database-operator/apis/database/v1"
)

// TestStartupAndLivenessHoldWhileInitialising runs the rendered startup and
// liveness probes of both engines with no server listening: they pass while
// the initialisation marker exists (a restore's load or a replica's copy,
// with the image's temporary server on the local socket only, may take
// longer than the startup probe's 15 minutes; a kill would only start it
// again) and fail without it. Readiness keeps checking the server.
func TestStartupAndLivenessHoldWhileInitialising(t *testing.T) {
	p := requirePostgres(t)
	requireMariaDB(t)
	for _, tc := range []struct {
		typ     databasev1.DatabaseType
		version string
		env     func(volume string) map[string]string
	}{
		{databasev1.PostgreSQL, "17", func(v string) map[string]string {
			return map[string]string{"PGDATA": filepath.Join(v, "pgdata"), "PATH": p.path()}
		}},
		{databasev1.MySQL, "8.4", func(v string) map[string]string {
			return map[string]string{"DATA_VOLUME": v, "PATH": "/usr/bin:/bin"}
		}},
	} {
		t.Run(string(tc.typ), func(t *testing.T) {
			g := NewWithT(t)
			c := renderDB(t, newDatabase("orders", tc.typ, tc.version, withReplicas(2))).database(t)
			volume := t.TempDir()
			for name, probe := range map[string][]string{"startup": c.StartupProbe.Exec.Command, "liveness": c.LivenessProbe.Exec.Command} {
				_, err := run(t, 30*time.Second, rootUser, tc.env(volume), "", probe[0], probe[1:]...)
				g.Expect(err).To(HaveOccurred(), "%s: no server and no initialisation: the probe fails", name)
				marker := filepath.Join(volume, ".database-operator-initialising")
				g.Expect(os.WriteFile(marker, nil, 0o600)).To(Succeed())
				out, err := run(t, 30*time.Second, rootUser, tc.env(volume), "", probe[0], probe[1:]...)
				g.Expect(err).NotTo(HaveOccurred(), "%s: initialising: the probe passes: %s", name, out)
				g.Expect(os.Remove(marker)).To(Succeed())
			}
			ready := c.ReadinessProbe.Exec.Command
			g.Expect(os.WriteFile(filepath.Join(volume, ".database-operator-initialising"), nil, 0o600)).To(Succeed())
			_, err := run(t, 30*time.Second, rootUser, tc.env(volume), "", ready[0], ready[1:]...)
			g.Expect(err).To(HaveOccurred(), "readiness: not Ready while initialising")
		})
	}
}
