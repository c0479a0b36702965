package instance

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// GTIDSet is a MySQL GTID set, as @@gtid_executed prints it:
// "uuid:1-5:7,uuid2:1-3", where MySQL 8.3 and later may put tags before
// intervals ("uuid:1-5:mytag:1-2"). It maps each source (the server UUID,
// lower case, with ":tag" when tagged) to its transaction numbers as
// sorted, disjoint, non-adjacent closed intervals.
type GTIDSet map[string][]GTIDInterval

// GTIDInterval is a closed range of transaction numbers.
type GTIDInterval struct{ First, Last uint64 }

// ParseGTIDSet reads a GTID set; the empty string is the empty set.
// Whitespace (MySQL puts a newline after each comma) is ignored.
func ParseGTIDSet(s string) (GTIDSet, error) {
	set := GTIDSet{}
	s = strings.Join(strings.Fields(s), "")
	if s == "" {
		return set, nil
	}
	for _, part := range strings.Split(s, ",") {
		fields := strings.Split(part, ":")
		uuid := strings.ToLower(fields[0])
		if !validUUID(uuid) {
			return nil, fmt.Errorf("GTID set %q: %q is not a server UUID", s, fields[0])
		}
		if len(fields) == 1 {
			return nil, fmt.Errorf("GTID set %q: %s has no transactions", s, uuid)
		}
		source := uuid
		for _, f := range fields[1:] {
			if f == "" {
				return nil, fmt.Errorf("GTID set %q: an empty interval after %s", s, uuid)
			}
			if f[0] < '0' || f[0] > '9' {
				if !validTag(f) {
					return nil, fmt.Errorf("GTID set %q: %q is neither an interval nor a tag", s, f)
				}
				source = uuid + ":" + strings.ToLower(f)
				continue
			}
			iv, err := parseInterval(f)
			if err != nil {
				return nil, fmt.Errorf("GTID set %q: %w", s, err)
			}
			set[source] = append(set[source], iv)
		}
	}
	for source, ivs := range set {
		set[source] = normalise(ivs)
	}
	return set, nil
}

func parseInterval(f string) (GTIDInterval, error) {
	a, b, isRange := strings.Cut(f, "-")
	first, err := strconv.ParseUint(a, 10, 63)
	if err != nil || first == 0 {
		return GTIDInterval{}, fmt.Errorf("interval %q: transaction numbers start at 1", f)
	}
	last := first
	if isRange {
		if last, err = strconv.ParseUint(b, 10, 63); err != nil || last < first {
			return GTIDInterval{}, fmt.Errorf("interval %q: want first-last with first <= last", f)
		}
	}
	return GTIDInterval{First: first, Last: last}, nil
}

// normalise sorts and merges overlapping or adjacent intervals.
func normalise(ivs []GTIDInterval) []GTIDInterval {
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].First < ivs[j].First })
	out := ivs[:0:0]
	for _, iv := range ivs {
		if n := len(out); n > 0 && iv.First <= out[n-1].Last+1 {
			out[n-1].Last = max(out[n-1].Last, iv.Last)
			continue
		}
		out = append(out, iv)
	}
	return out
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// validTag is MySQL's rule for a GTID tag: a letter or underscore, then up
// to 31 letters, digits or underscores.
func validTag(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i, c := range strings.ToLower(s) {
		letter := c >= 'a' && c <= 'z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Contains says every transaction of o is in s: a server whose executed
// set contains another's lacks nothing the other committed.
func (s GTIDSet) Contains(o GTIDSet) bool {
	for source, ivs := range o {
		have := s[source]
		for _, iv := range ivs {
			if !covered(have, iv) {
				return false
			}
		}
	}
	return true
}

// covered says one of the normalised intervals holds all of iv (they are
// non-adjacent, so a covered interval lies within exactly one).
func covered(have []GTIDInterval, iv GTIDInterval) bool {
	i := sort.Search(len(have), func(i int) bool { return have[i].Last >= iv.First })
	return i < len(have) && have[i].First <= iv.First && have[i].Last >= iv.Last
}

// Count is the number of transactions in the set.
func (s GTIDSet) Count() uint64 {
	var n uint64
	for _, ivs := range s {
		for _, iv := range ivs {
			n += iv.Last - iv.First + 1
		}
	}
	return n
}

// String prints the set in MySQL's form, sources sorted (tagged ones after
// their server's untagged transactions).
func (s GTIDSet) String() string {
	sources := make([]string, 0, len(s))
	for source := range s {
		sources = append(sources, source)
	}
	sort.Strings(sources)
	var parts []string
	for _, source := range sources {
		var b strings.Builder
		b.WriteString(source)
		for _, iv := range s[source] {
			if iv.First == iv.Last {
				fmt.Fprintf(&b, ":%d", iv.First)
			} else {
				fmt.Fprintf(&b, ":%d-%d", iv.First, iv.Last)
			}
		}
		parts = append(parts, b.String())
	}
	return strings.Join(parts, ",")
}

// Union is every transaction of s or o.
func (s GTIDSet) Union(o GTIDSet) GTIDSet {
	out := GTIDSet{}
	for _, set := range []GTIDSet{s, o} {
		for source, ivs := range set {
			out[source] = append(out[source], ivs...)
		}
	}
	for source, ivs := range out {
		out[source] = normalise(ivs)
	}
	return out
}
