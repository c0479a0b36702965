package reconcile

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/render"
)

func TestCredentialValuesProblem(t *testing.T) {
	valid := func() map[string][]byte {
		return map[string][]byte{
			render.SecretKeyRootPassword:        []byte(`r00t pw'with"quotes\ $(id) ` + "`id`\n"),
			render.SecretKeyUsername:            []byte("shop_owner"),
			render.SecretKeyPassword:            []byte("app-secret-pw"),
			render.SecretKeyDatabase:            []byte("2024_orders"),
			render.SecretKeyReplicationPassword: []byte("replication-secret-pw"),
		}
	}
	for name, tc := range map[string]struct {
		change func(map[string][]byte)
		// want are the parts of the message; none means no problem.
		want []string
	}{
		"generated-like values": {change: func(map[string][]byte) {}},
		"hostile passwords pass as data": {change: func(d map[string][]byte) {
			d[render.SecretKeyPassword] = []byte("';DROP TABLE t;--\n$(touch /tmp/x)\\")
		}},
		"password of 1024 bytes": {change: func(d map[string][]byte) { d[render.SecretKeyPassword] = []byte(strings.Repeat("p", 1024)) }},
		"username with a quote": {
			change: func(d map[string][]byte) { d[render.SecretKeyUsername] = []byte("x'@'%'; DROP USER root; --") },
			want:   []string{"key username must be 1 to 32 letters, digits or '_'"},
		},
		"username with a line break": {
			change: func(d map[string][]byte) { d[render.SecretKeyUsername] = []byte("app\n") },
			want:   []string{"key username must be"},
		},
		"username of 33 characters": {
			change: func(d map[string][]byte) { d[render.SecretKeyUsername] = []byte(strings.Repeat("u", 33)) },
			want:   []string{"key username must be"},
		},
		"username starting with a digit": {
			change: func(d map[string][]byte) { d[render.SecretKeyUsername] = []byte("1app") },
			want:   []string{"key username must be"},
		},
		"username is the superuser": {
			change: func(d map[string][]byte) { d[render.SecretKeyUsername] = []byte("Postgres") },
			want:   []string{"key username must not be Postgres"},
		},
		"username is the replication user": {
			change: func(d map[string][]byte) { d[render.SecretKeyUsername] = []byte(render.ReplicationUser) },
			want:   []string{"must not be " + render.ReplicationUser},
		},
		"username in PostgreSQL's reserved prefix": {
			change: func(d map[string][]byte) { d[render.SecretKeyUsername] = []byte("pg_app") },
			want:   []string{"must not start with pg_"},
		},
		"database with a backtick": {
			change: func(d map[string][]byte) { d[render.SecretKeyDatabase] = []byte("x`; DROP DATABASE mysql; `") },
			want:   []string{"key database must be 1 to 63 letters, digits or '_'"},
		},
		"database of 64 characters": {
			change: func(d map[string][]byte) { d[render.SecretKeyDatabase] = []byte(strings.Repeat("d", 64)) },
			want:   []string{"key database must be"},
		},
		"database is a system schema": {
			change: func(d map[string][]byte) { d[render.SecretKeyDatabase] = []byte("mysql") },
			want:   []string{"key database must not be mysql"},
		},
		"empty root password": {
			change: func(d map[string][]byte) { d[render.SecretKeyRootPassword] = nil },
			want:   []string{"key root-password is empty"},
		},
		"NUL in the replication password": {
			change: func(d map[string][]byte) { d[render.SecretKeyReplicationPassword] = []byte("a\x00b") },
			want:   []string{"key replication-password holds a NUL byte"},
		},
		"password too long": {
			change: func(d map[string][]byte) { d[render.SecretKeyPassword] = []byte(strings.Repeat("p", 1025)) },
			want:   []string{"key password holds 1025 bytes; at most 1024"},
		},
		"missing keys, all named": {
			change: func(d map[string][]byte) { delete(d, render.SecretKeyUsername); delete(d, render.SecretKeyPassword) },
			want:   []string{"key username is missing", "key password is missing"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			data := valid()
			tc.change(data)
			d := credentialValuesProblem("shop-credentials", data)
			if len(tc.want) == 0 {
				g.Expect(d).To(BeNil())
				return
			}
			g.Expect(d).NotTo(BeNil())
			g.Expect(d.reason).To(Equal("CredentialsInvalid"))
			g.Expect(d.message).To(HavePrefix("Secret shop-credentials: "))
			for _, w := range tc.want {
				g.Expect(d.message).To(ContainSubstring(w))
			}
			for _, key := range []string{render.SecretKeyRootPassword, render.SecretKeyPassword, render.SecretKeyReplicationPassword} {
				if p := string(data[key]); len(p) > 3 {
					g.Expect(d.message).NotTo(ContainSubstring(p), "never a password in the message")
				}
			}
		})
	}
}
