package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// A failed start's reason, written to the termination message file, is
// reported while the agent retries, taken once (the file is emptied, so a
// later failure is not reported with this one's reason), and forgotten once
// the server answers.
func TestTerminationLogIsReportedWhileRetrying(t *testing.T) {
	g := NewWithT(t)
	file := filepath.Join(t.TempDir(), "termination-log")
	a := &runner{cfg: Config{TerminationLog: file, Backoff: time.Minute}, desired: "primary"}
	g.Expect(os.WriteFile(file, []byte("database-operator: restore failed: no dump x.sql.gz in /restore\n"), 0o644)).To(Succeed())
	a.readTerminationLog()
	a.backOff()
	g.Expect(a.describe()).To(Equal("retrying after failure 1: database-operator: restore failed: no dump x.sql.gz in /restore"))
	content, err := os.ReadFile(file)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(content).To(BeEmpty(), "taken: the file is emptied")

	a.readTerminationLog()
	g.Expect(a.lastFailure).To(ContainSubstring("no dump x.sql.gz"), "an empty file keeps the reason of the failure that wrote it")

	none := &runner{cfg: Config{Backoff: time.Minute}, desired: "primary"}
	none.readTerminationLog()
	none.backOff()
	g.Expect(none.describe()).To(Equal("retrying after failure 1"), "no termination log configured")
}
