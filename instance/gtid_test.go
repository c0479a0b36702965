package instance

import (
	"testing"

	. "github.com/onsi/gomega"
)

const (
	uuidA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	uuidB = "4f22ab58-82db-22f2-af44-d91bb0530673"
)

func TestParseGTIDSet(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
		count          uint64
	}{
		{name: "empty", in: "", want: "", count: 0},
		{name: "one transaction", in: uuidA + ":7", want: uuidA + ":7", count: 1},
		{name: "MySQL's own form, newline after the comma, upper case",
			in: "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,\n" + uuidB + ":1-3", want: uuidA + ":1-5," + uuidB + ":1-3", count: 8},
		{name: "intervals merged when adjacent or overlapping",
			in: uuidA + ":4-6:1-3:5-9:11", want: uuidA + ":1-9:11", count: 10},
		{name: "a source named twice", in: uuidA + ":1-2," + uuidA + ":3", want: uuidA + ":1-3", count: 3},
		{name: "tags (MySQL 8.3)", in: uuidA + ":1-5:Batch_1:1-2:3", want: uuidA + ":1-5," + uuidA + ":batch_1:1-3", count: 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			s, err := ParseGTIDSet(c.in)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(s.String()).To(Equal(c.want))
			g.Expect(s.Count()).To(Equal(c.count))
			again, err := ParseGTIDSet(s.String())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again).To(Equal(s), "String is parsed back to the same set")
		})
	}
}

func TestParseGTIDSetRefuses(t *testing.T) {
	for _, in := range []string{
		"not-a-uuid:1-5",
		uuidA,
		uuidA + ":",
		uuidA + ":0",
		uuidA + ":5-3",
		uuidA + ":1-",
		uuidA + ":1-5::7",
		uuidA + ":9tag:1",
		uuidA + ":" + "t23456789012345678901234567890123:1",
		uuidA + ":1-5,",
		"0-1-2:1", // MariaDB's domain-server-sequence form is not MySQL's
	} {
		_, err := ParseGTIDSet(in)
		NewWithT(t).Expect(err).To(HaveOccurred(), "%q", in)
	}
}

func TestGTIDSetContains(t *testing.T) {
	for _, c := range []struct {
		name, s, o string
		want       bool
	}{
		{name: "equal sets", s: uuidA + ":1-5", o: uuidA + ":1-5", want: true},
		{name: "a superset", s: uuidA + ":1-9," + uuidB + ":1", o: uuidA + ":2-4", want: true},
		{name: "anything contains the empty set", s: "", o: "", want: true},
		{name: "the empty set contains nothing else", s: "", o: uuidA + ":1", want: false},
		{name: "behind on the same source", s: uuidA + ":1-4", o: uuidA + ":1-5", want: false},
		{name: "a gap the other has", s: uuidA + ":1-3:5-9", o: uuidA + ":4", want: false},
		{name: "an interval across a gap", s: uuidA + ":1-3:5-9", o: uuidA + ":3-5", want: false},
		{name: "errant transaction of another source", s: uuidA + ":1-100", o: uuidA + ":1-5," + uuidB + ":1", want: false},
		{name: "tagged transactions are their own source", s: uuidA + ":1-9", o: uuidA + ":t:1", want: false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			s, err := ParseGTIDSet(c.s)
			g.Expect(err).NotTo(HaveOccurred())
			o, err := ParseGTIDSet(c.o)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(s.Contains(o)).To(Equal(c.want))
		})
	}
}

func TestGTIDSetUnion(t *testing.T) {
	g := NewWithT(t)
	a, err := ParseGTIDSet(uuidA + ":1-5:9")
	g.Expect(err).NotTo(HaveOccurred())
	b, err := ParseGTIDSet(uuidA + ":6-7," + uuidB + ":1")
	g.Expect(err).NotTo(HaveOccurred())
	u := a.Union(b)
	g.Expect(u.String()).To(Equal(uuidA + ":1-7:9," + uuidB + ":1"))
	g.Expect(u.Contains(a) && u.Contains(b)).To(BeTrue())
	g.Expect(a.String()).To(Equal(uuidA+":1-5:9"), "the operands are not changed")
}
