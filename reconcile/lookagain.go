package reconcile

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// lookAgain remembers, per Database, when a reconcile asked to look again
// (a failover delay or a switchover timeout running out). The controller's
// queue holds one entry per Database: a watch event that arrives while a
// timed look is pending takes the timed entry's place, and a reconcile
// that then ends at once (only the operator's own writes came back) would
// lose the timed look for good: seen on real pods as a failover that
// waited 1m45s, until an unrelated pod update, instead of 5 s.
type lookAgain struct {
	mu sync.Mutex
	at map[types.NamespacedName]time.Time
}

// set records when to look at the Database again; zero forgets it.
func (l *lookAgain) set(key types.NamespacedName, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if at.IsZero() {
		delete(l.at, key)
		return
	}
	if l.at == nil {
		l.at = map[types.NamespacedName]time.Time{}
	}
	l.at[key] = at
}

// pending says how long until the recorded look (0 when none), and whether
// it is due: the reconcile now must do the whole work.
func (l *lookAgain) pending(key types.NamespacedName, now time.Time) (left time.Duration, due bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.at[key]
	if !ok {
		return 0, false
	}
	if !now.Before(at) {
		return 0, true
	}
	return at.Sub(now), false
}
