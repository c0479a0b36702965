package agent

import (
	"bytes"
	"os/exec"
	"testing"

	. "github.com/onsi/gomega"
)

// As PID 1 the reaper waits for every child, racing os/exec's own Wait:
// run must give a command's outcome and output whoever reaps it. The test
// process plays PID 1 with a reaper of its own.
func TestRunWithAReaperOfEveryChild(t *testing.T) {
	g := NewWithT(t)
	p := &processes{pid1: true, waiting: map[int]chan<- exit{}, early: map[int]exit{}}
	go p.reapAll()
	for i := 0; i < 50; i++ {
		var out bytes.Buffer
		cmd := exec.Command("sh", "-c", "echo answered")
		cmd.Stdout = &out
		g.Expect(p.run(cmd)).To(Succeed(), "run %d", i)
		g.Expect(out.String()).To(Equal("answered\n"), "run %d: the output is collected", i)

		err := p.run(exec.Command("sh", "-c", "exit 3"))
		g.Expect(err).To(HaveOccurred(), "run %d: a failure is one", i)
		g.Expect(err.Error()).To(ContainSubstring("3"))
	}
}
