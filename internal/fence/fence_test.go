package fence

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// fakeLock is a resourcelock that answers updates with err.
type fakeLock struct {
	resourcelock.Interface
	err error
}

func (f *fakeLock) Identity() string { return "me" }
func (f *fakeLock) Create(context.Context, resourcelock.LeaderElectionRecord) error {
	return f.err
}
func (f *fakeLock) Update(context.Context, resourcelock.LeaderElectionRecord) error {
	return f.err
}

// TestFence walks a replica through the Lease's life on a fake clock and
// sends a write and a read through the fenced transport at each step.
func TestFence(t *testing.T) {
	const valid = 5 * time.Second
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	type step struct {
		what string
		// at is the clock's offset from t0 when the step runs.
		at time.Duration
		// lease: the Lease write at this step ("" none, "renew", "renew
		// fails", "release").
		lease     string
		mayWrite  bool
		renewedAt time.Duration // expected Holding's since, when mayWrite
	}
	steps := []step{
		{what: "a standby that never held the Lease", at: 0, mayWrite: false},
		{what: "acquired", at: time.Second, lease: "renew", mayWrite: true},
		{what: "within the bound", at: 5*time.Second + 999*time.Millisecond, mayWrite: true, renewedAt: 4*time.Second + 999*time.Millisecond},
		{what: "frozen past the bound: refused before any renew loop runs", at: 6 * time.Second, mayWrite: false},
		{what: "a failed renewal does not extend it", at: 7 * time.Second, lease: "renew fails", mayWrite: false},
		{what: "renewed again", at: 8 * time.Second, lease: "renew", mayWrite: true},
		{what: "released: refused at once", at: 9 * time.Second, lease: "release", mayWrite: false},
	}

	var sent atomic.Int64
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer server.Close()

	now := t0
	lock := &fakeLock{}
	l := Wrap(lock, valid, func() time.Time { return now }, logr.Discard())
	httpClient := &http.Client{Transport: l.Transport(http.DefaultTransport)}
	for _, s := range steps {
		t.Run(s.what, func(t *testing.T) {
			g := NewWithT(t)
			now = t0.Add(s.at)
			switch s.lease {
			case "renew":
				lock.err = nil
				g.Expect(l.Update(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: "me"})).To(Succeed())
			case "renew fails":
				lock.err = errors.New("conflict")
				g.Expect(l.Update(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: "me"})).NotTo(Succeed())
			case "release":
				lock.err = nil
				g.Expect(l.Update(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: ""})).To(Succeed())
			}
			ok, since := l.Holding()
			g.Expect(ok).To(Equal(s.mayWrite), "Holding")
			if s.renewedAt != 0 {
				g.Expect(since).To(Equal(s.renewedAt))
			}

			before := sent.Load()
			resp, err := httpClient.Get(server.URL + "/api/v1/pods")
			g.Expect(err).NotTo(HaveOccurred(), "reads always pass")
			resp.Body.Close()
			g.Expect(sent.Load()).To(Equal(before + 1))

			req, _ := http.NewRequest(http.MethodPatch, server.URL+"/apis/apps/v1/namespaces/a/statefulsets/db", strings.NewReader("{}"))
			resp, err = httpClient.Do(req)
			if s.mayWrite {
				g.Expect(err).NotTo(HaveOccurred())
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				g.Expect(sent.Load()).To(Equal(before + 2))
				return
			}
			var fenced *FencedError
			g.Expect(errors.As(err, &fenced)).To(BeTrue(), "a refused write: %v", err)
			g.Expect(fenced.Error()).To(ContainSubstring("PATCH /apis/apps/v1/namespaces/a/statefulsets/db not sent"))
			g.Expect(sent.Load()).To(Equal(before+1), "the write never reached the server")
		})
	}
	g := NewWithT(t)
	g.Expect(l.Refused()).To(Equal(int64(4)))
}
