package enginetest

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/internal/pki"
	"github.com/example/database-operator/render"
)

// TestPostgresReplicaFollowsTLS turns TLS on, then off again, for a
// production Database with a replica that exists all along, with real
// PostgreSQL 15 and the rendered configuration, pg_hba.conf and
// prepare script at each step, as the StatefulSet rolls the pods:
//
//   - without TLS, pod 1 is copied from pod 0 and streams in plaintext;
//   - with TLS (ssl on, production's hostssl-only pg_hba.conf), the script
//     runs again on pod 1's existing data directory and rewrites
//     primary_conninfo with sslmode=verify-full and the mounted ca.crt, and
//     the walsender on the primary is encrypted (pg_stat_ssl) while the
//     walreceiver streams with verify-full to the primary's fully qualified
//     name;
//   - with TLS off again, the stale primary_conninfo (verify-full against a
//     CA file that is no longer mounted, a server with ssl off) does not
//     stream; after the script runs, the sslrootcert is gone and pod 1
//     streams again, in plaintext.
//
// The replica reaches the primary by the rendered PRIMARY_HOST,
// orders-0.orders-headless.shop.svc, unchanged: libpq connects to the
// address in PGHOSTADDR (127.0.0.1, set for the script and for the
// replica's server, whose walreceiver honours it like any libpq client) and
// verifies the certificate against the host name.
func TestPostgresReplicaFollowsTLS(t *testing.T) {
	p := requirePostgres(t)
	g := NewWithT(t)
	s := newSecret("orders", "app")
	bundle, err := pki.Issue(pki.Request{CAName: "orders.shop database CA", DNSNames: render.ServerDNSNames("orders", "shop"),
		Now: time.Now(), Rand: rand.Reader})
	g.Expect(err).NotTo(HaveOccurred())
	plain := renderDB(t, newDatabase("orders", databasev1.PostgreSQL, "15", withEnvironment(databasev1.Production), withReplicas(2)))
	withTLSOn := renderDB(t, newDatabase("orders", databasev1.PostgreSQL, "15", withEnvironment(databasev1.Production), withReplicas(2), withTLS("")))

	const primaryHost = "orders.shop.svc"
	tlsEnv := envOf(withTLSOn.database(t))
	g.Expect(tlsEnv).To(HaveKeyWithValue("PRIMARY_HOST", primaryHost))
	g.Expect(tlsEnv).To(HaveKeyWithValue("PGSSLMODE", "verify-full"))
	g.Expect(tlsEnv).To(HaveKeyWithValue("PGSSLROOTCERT", "/etc/database-operator/tls/ca.crt"))
	g.Expect(envOf(plain.database(t))).To(HaveKeyWithValue("PRIMARY_HOST", primaryHost))
	loopback := map[string]string{"PGHOSTADDR": "127.0.0.1"}

	// withTLSFiles lays the TLS Secret out for a pod of the TLS rendering
	// and returns its local ca.crt.
	withTLSFiles := func(in *pgInstance) string {
		overrides, caFile := writeTLSSecret(t, in.r, mkdir(t, filepath.Join(in.dir, "tls"), rootUser, 0o755), p.user, bundle)
		in.cfg.containerArgs = append(in.cfg.containerArgs, overrides...)
		return caFile
	}
	// replication is what the primary sees of pod 1's walsender: its state
	// and whether the connection is encrypted.
	replication := func(primary *pgInstance) func() string {
		return func() string {
			out, _ := primary.asSuperuser(t, "SELECT r.state || ' ssl=' || s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s ON s.pid = r.pid WHERE r.application_name = 'orders-1'")
			return out
		}
	}
	expectRow := func(primary, replica *pgInstance, id, name string) {
		primary.mustApp(t, "INSERT INTO items VALUES ("+id+", '"+name+"')")
		g.Eventually(func() string {
			out, _ := replica.asApp(t, "SELECT name FROM items WHERE id = "+id)
			return out
		}).WithTimeout(10*time.Second).WithPolling(100*time.Millisecond).Should(Equal(name), "the row reached the replica")
	}

	// Without TLS: copied and streaming in plaintext.
	primary := newPGInstance(t, p, plain, s, "orders-0")
	primary.mustInit(t, nil)
	primary.start(t)
	primary.mustApp(t, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
	replica := newPGInstance(t, p, plain, s, "orders-1")
	replica.serverEnv = loopback
	out, err := runBootstrapReplica(t, replica, map[string]string{"PRIMARY_PORT": fmt.Sprint(primary.port), "PGHOSTADDR": "127.0.0.1"})
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("copied the primary from " + primaryHost))
	g.Expect(primaryConninfo(t, replica.pgdata)).To(ConsistOf(And(
		ContainSubstring("host=''"+primaryHost+"''"), ContainSubstring("sslmode=''prefer''"), Not(ContainSubstring("sslrootcert")))))
	replica.start(t)
	g.Eventually(replication(primary)).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal("streaming ssl=false"))
	expectRow(primary, replica, "1", "before TLS")

	// TLS on: the pods roll onto the new configuration; the agent's prepare
	// script runs again on pod 1's existing data directory.
	replica.stop()
	primary.stop()
	primary = primary.rerendered(t, withTLSOn)
	withTLSFiles(primary)
	primary.start(t)
	replica = replica.rerendered(t, withTLSOn)
	caFile := withTLSFiles(replica)
	stale := primaryConninfo(t, replica.pgdata)
	g.Expect(stale).To(ConsistOf(Not(ContainSubstring("verify-full"))), "pg_basebackup -R recorded the settings of its day")
	out, err = runBootstrapReplica(t, replica, map[string]string{"PRIMARY_PORT": fmt.Sprint(primary.port), "PGHOSTADDR": "127.0.0.1",
		"PGSSLROOTCERT": caFile}) // the rendered /etc/database-operator/tls/ca.crt, where writeTLSSecret put it
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("starting as a replica of " + primaryHost))
	g.Expect(out).NotTo(ContainSubstring("copied the primary"))
	g.Expect(primaryConninfo(t, replica.pgdata)).To(ConsistOf(And(
		ContainSubstring("host=''"+primaryHost+"''"), ContainSubstring("sslmode=''verify-full''"), ContainSubstring("sslrootcert=''"+caFile+"''"))))
	replica.start(t)
	g.Eventually(replication(primary)).WithTimeout(10*time.Second).WithPolling(100*time.Millisecond).Should(Equal("streaming ssl=true"),
		"the walsender's connection is encrypted")
	out, err = replica.asSuperuser(t, "SELECT status || ' ' || conninfo FROM pg_stat_wal_receiver")
	g.Expect(err).NotTo(HaveOccurred(), out)
	t.Logf("pg_stat_wal_receiver with TLS: %s", out)
	g.Expect(out).To(HavePrefix("streaming "))
	g.Expect(out).To(ContainSubstring("host=" + primaryHost))
	g.Expect(out).To(ContainSubstring("sslmode=verify-full"))
	expectRow(primary, replica, "2", "with TLS")

	// TLS off again: the Secret is no longer mounted and the primary serves
	// plaintext only.
	replica.stop()
	primary.stop()
	g.Expect(os.Remove(caFile)).To(Succeed())
	primary = primary.rerendered(t, plain)
	primary.start(t)
	replica = replica.rerendered(t, plain)
	// Started on the stale primary_conninfo, as before this fix, the replica
	// cannot connect.
	replica.start(t)
	g.Eventually(func() string { return replica.srv.logText() }).WithTimeout(15 * time.Second).WithPolling(200 * time.Millisecond).
		Should(ContainSubstring("could not connect to the primary server"))
	g.Consistently(replication(primary)).WithTimeout(time.Second).Should(BeEmpty())
	t.Logf("stale primary_conninfo after TLS off: %s", lastLine(replica.srv.logText(), "could not connect"))
	replica.stop()

	out, err = runBootstrapReplica(t, replica, map[string]string{"PRIMARY_PORT": fmt.Sprint(primary.port), "PGHOSTADDR": "127.0.0.1"})
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(primaryConninfo(t, replica.pgdata)).To(ConsistOf(And(
		ContainSubstring("host=''"+primaryHost+"''"), ContainSubstring("sslmode=''prefer''"), Not(ContainSubstring("sslrootcert")))))
	replica.start(t)
	g.Eventually(replication(primary)).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal("streaming ssl=false"))
	expectRow(primary, replica, "3", "after TLS")
}

// envOf is a container's environment variables with plain values.
func envOf(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	return env
}

// lastLine returns the last line of text that contains substr.
func lastLine(text, substr string) string {
	var last string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			last = l
		}
	}
	return last
}
