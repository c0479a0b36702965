package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// processes starts children and reports their exits. As PID 1 of the
// database container the agent is also the parent of every orphan (the
// server's children outlive a crashed postmaster), so it reaps every
// child, known or not; elsewhere (tests) it waits for its own only.
type processes struct {
	pid1 bool

	mu      sync.Mutex
	waiting map[int]chan<- exit
	// early holds exits reaped before the starter registered the pid.
	early map[int]exit
}

// exit is how a child ended.
type exit struct {
	pid    int
	status syscall.WaitStatus
}

func (e exit) String() string {
	switch {
	case e.status.Exited():
		return fmt.Sprintf("exited with status %d", e.status.ExitStatus())
	case e.status.Signaled():
		return fmt.Sprintf("killed by %s", e.status.Signal())
	default:
		return fmt.Sprintf("ended (%#x)", uint32(e.status))
	}
}

var (
	sharedOnce sync.Once
	shared     *processes
)

// sharedProcesses is the one registry of the agent's children: as PID 1
// its reaper waits for every child of the process, so everything the agent
// runs goes through it.
func sharedProcesses() *processes {
	sharedOnce.Do(func() { shared = newProcesses() })
	return shared
}

// runCommand runs cmd to its end, as cmd.Run does. As PID 1 the reaper may
// reap the child before cmd.Wait does (Wait then fails with "no child
// processes", seen on real pods as a server reported not answering): the
// exit status is then the reaper's.
func runCommand(cmd *exec.Cmd) error {
	return sharedProcesses().run(cmd)
}

// clientOutput runs a database client (psql, mysql) within timeout with env
// added to the agent's environment, and returns its trimmed output; its
// error output goes into the error, named by the client.
func clientOutput(ctx context.Context, timeout time.Duration, env []string, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := runCommand(cmd); err != nil {
		return "", fmt.Errorf("%s: %w: %s", filepath.Base(bin), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func (p *processes) run(cmd *exec.Cmd) error {
	if !p.pid1 {
		return cmd.Run()
	}
	done := make(chan exit, 1)
	p.mu.Lock()
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return err
	}
	pid := cmd.Process.Pid
	if e, ok := p.early[pid]; ok {
		delete(p.early, pid)
		done <- e
	} else {
		p.waiting[pid] = done
	}
	p.mu.Unlock()
	// Wait also collects the output and closes the pipes, whoever reaps.
	err := cmd.Wait()
	if !errors.Is(err, syscall.ECHILD) {
		p.mu.Lock()
		delete(p.waiting, pid)
		p.mu.Unlock()
		return err
	}
	e := <-done
	if e.status.Exited() && e.status.ExitStatus() == 0 {
		return nil
	}
	return fmt.Errorf("%s %s", cmd.Path, e)
}

func newProcesses() *processes {
	p := &processes{pid1: os.Getpid() == 1, waiting: map[int]chan<- exit{}, early: map[int]exit{}}
	if p.pid1 {
		go p.reapAll()
	}
	return p
}

// start runs argv with env added to the agent's environment; its exit is
// sent on the returned channel (buffered, so nobody has to read it).
func (p *processes) start(argv []string, env []string, output io.Writer, attr *syscall.SysProcAttr) (int, <-chan exit, error) {
	name := argv[0]
	cmd := exec.Command(name, argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = attr
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	if output != nil {
		cmd.Stdout, cmd.Stderr = output, output
	}
	done := make(chan exit, 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("starting %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	if p.pid1 {
		if e, ok := p.early[pid]; ok {
			delete(p.early, pid)
			done <- e
		} else {
			p.waiting[pid] = done
		}
		return pid, done, nil
	}
	go func() {
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			if err != syscall.EINTR {
				break
			}
		}
		done <- exit{pid: pid, status: ws}
	}()
	return pid, done, nil
}

// reapAll waits for any child whenever one ends.
func (p *processes) reapAll() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD)
	for range sigs {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			if pid <= 0 || err != nil {
				break
			}
			p.mu.Lock()
			if ch, ok := p.waiting[pid]; ok {
				delete(p.waiting, pid)
				ch <- exit{pid: pid, status: ws}
			} else {
				p.early[pid] = exit{pid: pid, status: ws}
				// Orphans are never registered; keep the map small.
				if len(p.early) > 64 {
					for k := range p.early {
						delete(p.early, k)
						break
					}
				}
			}
			p.mu.Unlock()
		}
	}
}
