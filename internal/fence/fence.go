// Package fence keeps an operator replica that may have lost its leader
// Lease from writing to the API server.
//
// client-go's leader election finds out that the Lease is lost only when
// its renew loop runs. A replica that was frozen (SIGSTOP, a stalled VM, a
// long GC pause) past the Lease's duration wakes up with reconciles in
// flight and informer events queued, and they write at once, while another
// replica already leads: two writers of the same objects. The fence
// remembers when this replica last renewed the Lease (the start of the
// request, the conservative end), and its transport refuses every write
// sent more than a bound after that, before it leaves the process.
package fence

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Lease is a leader-election lock that records this replica's renewals,
// and the fence that follows them.
type Lease struct {
	resourcelock.Interface
	// valid is how long after the start of a renewal writes may be sent.
	valid time.Duration
	now   func() time.Time
	log   logr.Logger

	mu sync.Mutex
	// renewedAt is when this replica's last successful acquisition or
	// renewal of the Lease started; zero when it does not hold it.
	renewedAt time.Time

	refused atomic.Int64
}

// NewLease makes the Lease namespace/name lock for identity, with clients
// of cfg (which must not be fenced: the renewals themselves are writes),
// and a fence that lets writes through for valid after each renewal. Give
// valid the elector's renew deadline: that is when client-go gives the
// leadership up, and other replicas wait the longer lease duration.
func NewLease(cfg *rest.Config, namespace, name, identity string, valid time.Duration, log logr.Logger) (*Lease, error) {
	cfg = rest.CopyConfig(cfg)
	cfg = rest.AddUserAgent(cfg, "leader-election")
	// One hung request must not use up the whole renew deadline (what
	// controller-runtime does for its own lock).
	cfg.Timeout = max(valid/2, time.Second)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("leader election clients: %w", err)
	}
	// No event recorder: the Events a new leader records would be writes
	// of their own, and the log says as much.
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, namespace, name, cs.CoreV1(), cs.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: identity})
	if err != nil {
		return nil, fmt.Errorf("lease %s/%s: %w", namespace, name, err)
	}
	return Wrap(lock, valid, time.Now, log), nil
}

// Wrap fences behind lock: it is NewLease's core, with the clock passed in.
func Wrap(lock resourcelock.Interface, valid time.Duration, now func() time.Time, log logr.Logger) *Lease {
	return &Lease{Interface: lock, valid: valid, now: now, log: log}
}

// Create acquires a Lease that does not exist yet.
func (l *Lease) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	return l.write(r, func() error { return l.Interface.Create(ctx, r) })
}

// Update acquires, renews or releases the Lease.
func (l *Lease) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	return l.write(r, func() error { return l.Interface.Update(ctx, r) })
}

func (l *Lease) write(r resourcelock.LeaderElectionRecord, send func() error) error {
	start := l.now()
	mine := r.HolderIdentity == l.Identity()
	if !mine {
		// A release: nothing more is written from the moment it is asked
		// for, since another replica may take the Lease as soon as it lands.
		l.setRenewed(time.Time{})
	}
	err := send()
	if err == nil && mine {
		l.setRenewed(start)
	}
	return err
}

func (l *Lease) setRenewed(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.renewedAt = t
}

// Holding says whether this replica may write now, and how long ago it
// last renewed the Lease (zero when it never did or released it).
func (l *Lease) Holding() (bool, time.Duration) {
	l.mu.Lock()
	at := l.renewedAt
	l.mu.Unlock()
	if at.IsZero() {
		return false, 0
	}
	since := l.now().Sub(at)
	return since < l.valid, since
}

// Refused is how many writes the fence has refused.
func (l *Lease) Refused() int64 { return l.refused.Load() }

// Transport wraps rt: requests that change something (every method but
// GET, HEAD and OPTIONS; lists and watches are GETs) are refused without
// being sent while Holding says no. Give it to rest.Config.Wrap for every
// client of the manager, but not for the Lease's own.
func (l *Lease) Transport(rt http.RoundTripper) http.RoundTripper {
	return &fencedTransport{lease: l, next: rt}
}

type fencedTransport struct {
	lease *Lease
	next  http.RoundTripper
}

// FencedError is the error of a refused write.
type FencedError struct {
	Method, Path string
	// Since is how long ago the Lease was last renewed; zero when it is
	// not held.
	Since, Valid time.Duration
}

func (e *FencedError) Error() string {
	if e.Since == 0 {
		return fmt.Sprintf("fenced: %s %s not sent: this replica does not hold the leader Lease", e.Method, e.Path)
	}
	return fmt.Sprintf("fenced: %s %s not sent: this replica last renewed the leader Lease %s ago (writes stop after %s; another replica may lead)",
		e.Method, e.Path, e.Since.Round(time.Millisecond), e.Valid)
}

func (t *fencedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return t.next.RoundTrip(req)
	}
	if ok, since := t.lease.Holding(); !ok {
		n := t.lease.refused.Add(1)
		err := &FencedError{Method: req.Method, Path: req.URL.Path, Since: since, Valid: t.lease.valid}
		t.lease.log.Info("write refused: the leader Lease is not fresh", "method", req.Method, "path", req.URL.Path,
			"renewedAgo", since.String(), "refusedSoFar", n)
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	return t.next.RoundTrip(req)
}
