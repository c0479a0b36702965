package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
)

// The API server's audit log is how the bench counts the operator's
// requests. apiserver_request_total has no label for the client (only
// verb, group, version, resource, subresource, scope, component, code), so
// the operator and the bench-limit loop each connect as their own envtest
// user (a client certificate), and the audit policy records exactly those
// two users' requests at the Metadata level, once each, when the response
// is complete (a watch is recorded when it ends). Nothing else is logged,
// so the bench's own requests (creating Databases, its informers, the
// resourceVersion lists) cost the API server nothing extra.

const (
	// operatorUser is the operator's envtest user.
	operatorUser = "database-operator"
	// limitUser is the raw apply loop's envtest user.
	limitUser = "bench-limit"
)

// auditPolicy logs the two users' requests and nothing else.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
  users: ["` + operatorUser + `", "` + limitUser + `"]
- level: None
`

// auditEvent is the part of an audit.k8s.io/v1 Event the bench reads.
type auditEvent struct {
	Verb string `json:"verb"`
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// isWrite reports whether a verb changes state.
func isWrite(verb string) bool {
	switch verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

// requests counts one user's requests.
type requests struct {
	// ByKind counts "verb resource[/subresource]".
	ByKind map[string]int
	// Writes and Reads count every write and read, Events excluded.
	Writes, Reads int
	// EventWrites counts Event creates and patches (events.k8s.io and core).
	EventWrites int
	// Failed counts responses with a code of 400 or more but 404 (a
	// get that finds nothing is how the operator checks for a Secret it
	// cannot see in its cache); NotFound counts the 404s.
	Failed, NotFound int
	// ByDatabase counts writes (Events excluded) attributed to a Database
	// of a workload, by namespace/name.
	ByDatabase map[string]int
	// Unattributed counts writes that name no known Database's object.
	Unattributed int
}

func newRequests() *requests {
	return &requests{ByKind: map[string]int{}, ByDatabase: map[string]int{}}
}

// add counts e; owner maps namespace/object name to its Database.
func (r *requests) add(e auditEvent, owner func(ns, name string) (string, bool)) {
	res, sub, ns, name := "", "", "", ""
	if e.ObjectRef != nil {
		res, sub, ns, name = e.ObjectRef.Resource, e.ObjectRef.Subresource, e.ObjectRef.Namespace, e.ObjectRef.Name
	}
	kind := e.Verb + " " + res
	if sub != "" {
		kind += "/" + sub
	}
	r.ByKind[kind]++
	if e.ResponseStatus != nil {
		switch code := e.ResponseStatus.Code; {
		case code == 404:
			r.NotFound++
		case code >= 400:
			r.Failed++
		}
	}
	switch {
	case res == "events" && isWrite(e.Verb):
		r.EventWrites++
	case isWrite(e.Verb):
		r.Writes++
		if db, ok := owner(ns, name); ok {
			r.ByDatabase[db]++
		} else {
			r.Unattributed++
		}
	default:
		r.Reads++
	}
}

// summary is "n verb resource" for the most frequent kinds, largest first.
func (r *requests) summary() string {
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range r.ByKind {
		all = append(all, kv{k, n})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].k < all[j].k
	})
	var parts []string
	for _, e := range all {
		parts = append(parts, fmt.Sprintf("%d %s", e.n, e.k))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// auditLog reads the audit log incrementally and counts each user's
// requests into the current phase.
type auditLog struct {
	path string

	mu     sync.Mutex
	offset int64
	// owners maps namespace/object name to namespace/Database name.
	owners map[string]string
}

func newAuditLog(path string) *auditLog {
	return &auditLog{path: path, owners: map[string]string{}}
}

// own registers the objects of the Databases so writes can be attributed.
func (a *auditLog) own(dbs []dbRef) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range dbs {
		a.owners[d.Namespace+"/"+d.Name] = d.key() // the Database (status), StatefulSet, Services, PDB
		a.owners[d.Namespace+"/"+d.Name+"-credentials"] = d.key()
		for _, c := range d.Children {
			_, name, _ := strings.Cut(c, "/")
			a.owners[d.Namespace+"/"+name] = d.key()
		}
	}
}

func (a *auditLog) owner(ns, name string) (string, bool) {
	db, ok := a.owners[ns+"/"+name]
	return db, ok
}

// next counts the complete lines logged since the last call, per user.
func (a *auditLog) next() (map[string]*requests, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]*requests{operatorUser: newRequests(), limitUser: newRequests()}
	f, err := os.Open(a.path)
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(a.offset, io.SeekStart); err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			// An incomplete last line is read again next time.
			break
		}
		if err != nil {
			return nil, err
		}
		a.offset += int64(len(line))
		var e auditEvent
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("audit log %s: %w", a.path, err)
		}
		if req, ok := out[e.User.Username]; ok {
			req.add(e, a.owner)
		}
	}
	return out, nil
}
