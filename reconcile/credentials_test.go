package reconcile

import (
	"net/url"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/render"
)

func TestNewCredentialsSecret(t *testing.T) {
	for typ, want := range map[databasev1.DatabaseType]struct{ scheme, port string }{
		databasev1.PostgreSQL: {"postgresql", "5432"},
		databasev1.MySQL:      {"mysql", "3306"},
	} {
		g := NewWithT(t)
		db := &databasev1.Database{
			ObjectMeta: metav1.ObjectMeta{Name: "orders-db", Namespace: "shop"},
			Spec:       databasev1.DatabaseSpec{Type: typ, Version: "1", Storage: databasev1.StorageSpec{Size: resource.MustParse("1Gi")}},
		}
		s, err := newCredentialsSecret(db)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.Name).To(Equal("orders-db-credentials"))
		g.Expect(s.OwnerReferences).To(BeEmpty(), "the Secret outlives the Database")
		g.Expect(s.Labels).To(HaveKeyWithValue(render.LabelManagedBy, "database-operator"))
		d := s.StringData
		g.Expect(d).To(HaveKeyWithValue("username", "app"))
		g.Expect(d).To(HaveKeyWithValue("database", "orders_db"))
		g.Expect(d).To(HaveKeyWithValue("host", "orders-db.shop.svc"))
		g.Expect(d).To(HaveKeyWithValue("port", want.port))
		for _, k := range []string{"root-password", "password", "replication-password"} {
			g.Expect(d[k]).To(MatchRegexp("^[A-Za-z0-9]{32}$"), k)
		}
		g.Expect(d["root-password"]).NotTo(Equal(d["password"]))
		g.Expect(d["password"]).NotTo(Equal(d["replication-password"]))
		u, err := url.Parse(d["uri"])
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(u.Scheme).To(Equal(want.scheme))
		g.Expect(u.Host).To(Equal("orders-db.shop.svc:" + want.port))
		g.Expect(u.Path).To(Equal("/orders_db"))
		pw, _ := u.User.Password()
		g.Expect(u.User.Username()).To(Equal("app"))
		g.Expect(pw).To(Equal(d["password"]))
	}
}

func TestPasswordsDiffer(t *testing.T) {
	g := NewWithT(t)
	seen := map[string]bool{}
	for range 100 {
		p, err := password()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(seen).NotTo(HaveKey(p))
		seen[p] = true
	}
}

func TestDatabaseName(t *testing.T) {
	g := NewWithT(t)
	g.Expect(databaseName("a.b-c")).To(Equal("a_b_c"))
	g.Expect(databaseName(strings.Repeat("x", 100))).To(HaveLen(63))
}
