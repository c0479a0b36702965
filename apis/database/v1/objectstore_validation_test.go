package v1_test

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
)

// TestObjectStoreRules: spec.backup.s3 and spec.restore.pointInTime on a
// real API server, each refusal naming its field.
func TestObjectStoreRules(t *testing.T) {
	ns := env.Namespace(t)
	const pg = `type: postgresql, version: "16", storage: {size: 1Gi}`
	const s3 = `{endpoint: "https://s3.example.com:9000", bucket: backups, path: team-a/prod, credentialsSecret: s3-keys}`
	cases := []createCase{
		{name: "ok s3", spec: `{` + pg + `, backup: {enabled: true, s3: ` + s3 + `, archiveTimeout: 30s}}`},
		{name: "ok aws", spec: `{` + pg + `, backup: {enabled: true, s3: {region: eu-west-1, bucket: my.backups, credentialsSecret: keys, caSecret: my-ca, virtualHostedStyle: true}}}`},
		{name: "ok http in-cluster", spec: `{` + pg + `, backup: {enabled: true, s3: {endpoint: "http://seaweedfs.storage.svc:8333", bucket: b12, credentialsSecret: k}}}`},
		{name: "no endpoint nor region", spec: `{` + pg + `, backup: {enabled: true, s3: {bucket: backups, credentialsSecret: k}}}`, want: refused("spec.backup.s3", "s3: set endpoint")},
		{name: "bad endpoint", spec: `{` + pg + `, backup: {s3: {endpoint: "ftp://x", bucket: backups, credentialsSecret: k}}}`, want: refused("spec.backup.s3.endpoint", "s3.endpoint must be an http:// or https:// URL")},
		{name: "endpoint with credentials", spec: `{` + pg + `, backup: {s3: {endpoint: "https://user:pw@x", bucket: backups, credentialsSecret: k}}}`, want: refused("spec.backup.s3.endpoint", "s3.endpoint must be")},
		{name: "bad bucket", spec: `{` + pg + `, backup: {s3: {region: us-east-1, bucket: Backups_1, credentialsSecret: k}}}`, want: refused("spec.backup.s3.bucket", "s3.bucket must be an S3 bucket name")},
		{name: "path traversal", spec: `{` + pg + `, backup: {s3: {region: us-east-1, bucket: backups, path: a/../b, credentialsSecret: k}}}`, want: refused("spec.backup.s3.path", "without '.' or '..' folders")},
		{name: "leading slash", spec: `{` + pg + `, backup: {s3: {region: us-east-1, bucket: backups, path: /a, credentialsSecret: k}}}`, want: refused("spec.backup.s3.path", "s3.path must be")},
		{name: "no credentials", spec: `{` + pg + `, backup: {s3: {region: us-east-1, bucket: backups}}}`, want: refused("spec.backup.s3.credentialsSecret", "Required value").notChecked()},
		{name: "bad credentials name", spec: `{` + pg + `, backup: {s3: {region: us-east-1, bucket: backups, credentialsSecret: "Keys!"}}}`, want: refused("spec.backup.s3.credentialsSecret", "must be a Secret name")},
		{name: "archiveTimeout too short", spec: `{` + pg + `, backup: {s3: ` + s3 + `, archiveTimeout: 5s}}`, want: refused("spec.backup.archiveTimeout", "from 10s to 600s")},
		{name: "archiveTimeout not a duration", spec: `{` + pg + `, backup: {s3: ` + s3 + `, archiveTimeout: soon}}`, want: refused("spec.backup.archiveTimeout", "from 10s to 600s")},
		{name: "ok mysql s3", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}, backup: {enabled: true, s3: ` + s3 + `, archiveTimeout: 30s}}`},
		{name: "ok mysql restore check", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}, backup: {enabled: true, s3: ` + s3 + `, restoreCheck: {schedule: "@daily", query: "SELECT count(*) FROM orders"}}}`},

		{name: "ok restore check", spec: `{` + pg + `, backup: {enabled: true, s3: ` + s3 + `, restoreCheck: {schedule: "0 6 * * *", query: "SELECT count(*) FROM orders"}}}`},
		{name: "restore check without s3", spec: `{` + pg + `, backup: {enabled: true, restoreCheck: {schedule: "@daily"}}}`, want: refused("spec.backup.restoreCheck", "needs spec.backup.s3")},
		{name: "restore check bad schedule", spec: `{` + pg + `, backup: {enabled: true, s3: ` + s3 + `, restoreCheck: {schedule: "daily at six"}}}`, want: refused("spec.backup.restoreCheck.schedule", "5-field cron expression")},
		{name: "ok pitr own store", spec: `{` + pg + `, backup: {enabled: true, s3: ` + s3 + `}, restore: {fromDatabase: orders, pointInTime: {targetTime: "2026-12-02T23:15:00.250+01:00"}}}`},
		{name: "ok pitr latest other store", spec: `{` + pg + `, restore: {fromDatabase: orders, pointInTime: {s3: ` + s3 + `}}}`},
		{name: "pitr without store", spec: `{` + pg + `, restore: {fromDatabase: orders, pointInTime: {}}}`, want: refused("spec.restore.pointInTime", "needs the object store that holds the source's archive")},
		{name: "pitr bad time", spec: `{` + pg + `, restore: {fromDatabase: orders, pointInTime: {targetTime: "yesterday", s3: ` + s3 + `}}}`, want: refused("spec.restore.pointInTime.targetTime", "RFC 3339")},
		{name: "pitr time without zone", spec: `{` + pg + `, restore: {fromDatabase: orders, pointInTime: {targetTime: "2026-12-02T23:15:00", s3: ` + s3 + `}}}`, want: refused("spec.restore.pointInTime.targetTime", "RFC 3339")},
		{name: "pitr and dump", spec: `{` + pg + `, restore: {fromDatabase: orders, backup: a.sql.gz, pointInTime: {s3: ` + s3 + `}}}`, want: refused("spec.restore", "either backup")},
		{name: "ok pitr mysql", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}, restore: {fromDatabase: orders, pointInTime: {targetTime: "2026-12-02T23:15:00+01:00", s3: ` + s3 + `}}}`},
		{name: "pitr mysql fraction of a second", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}, restore: {fromDatabase: orders, pointInTime: {targetTime: "2026-12-02T23:15:00.250Z", s3: ` + s3 + `}}}`, want: refused("spec.restore.pointInTime.targetTime", "whole seconds")},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := env.Client.Create(ctx(t), newDatabase(ns, fmt.Sprintf("s3-%02d", i), specFromYAML(g, tc.spec)))
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			expectRefused(t, g, err, tc.want)
		})
	}

	// A Database restoring the archive of one of the same name (the source
	// deleted) must not archive into that archive.
	t.Run("same name, same archive", func(t *testing.T) {
		g := NewWithT(t)
		err := env.Client.Create(ctx(t), newDatabase(ns, "orders", specFromYAML(g, `{`+pg+`, backup: {enabled: true, s3: `+s3+`}, restore: {fromDatabase: orders, pointInTime: {}}}`)))
		expectRefused(t, g, err, refused("spec.backup.s3", "would archive into it"))
	})
	t.Run("same name, another path", func(t *testing.T) {
		g := NewWithT(t)
		other := `{endpoint: "https://s3.example.com:9000", bucket: backups, path: team-a/prod-2, credentialsSecret: s3-keys}`
		err := env.Client.Create(ctx(t), newDatabase(ns, "orders", specFromYAML(g, `{`+pg+`, backup: {enabled: true, s3: `+other+`}, restore: {fromDatabase: orders, pointInTime: {s3: `+s3+`}}}`)))
		g.Expect(err).NotTo(HaveOccurred())
	})
}
