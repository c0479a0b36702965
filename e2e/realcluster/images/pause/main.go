// Command pause is the real-pod cluster's pod sandbox process, imported as
// registry.k8s.io/pause:3.10 (build.sh). The kubelet starts one per pod to
// hold the pod's namespaces; it does nothing but wait. When it is PID 1 of a
// shared PID namespace (shareProcessNamespace) orphans are re-parented to it,
// so it reaps every child that exits. SIGINT or SIGTERM ends it with status 0.
//
// It is a stand-in for Kubernetes' own pause (a small C program), written for
// this project; it is built static (CGO_ENABLED=0) so the image needs no libc.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const version = "3.10-realcluster"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println("pause", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: warning: not PID 1, orphans of this pod will not be reaped here")
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		switch sig {
		case syscall.SIGCHLD:
			reap()
		default:
			fmt.Fprintf(os.Stderr, "pause: %v, exiting\n", sig)
			os.Exit(0)
		}
	}
}

// reap collects every child that has exited; several exits can arrive as
// one SIGCHLD, so it loops until none is left.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
