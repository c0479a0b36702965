package v1_test

// These tests run the Database CRD's OpenAPI schema, defaults and CEL rules
// on a real kube-apiserver (envtest). Every rule of database_types.go has at
// least one accepted and one refused case; a refusal must carry the rule's
// message and be reported on the expected field path.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	databasev1 "github.com/example/database-operator/apis/database/v1"
	"github.com/example/database-operator/internal/testenv"
)

// env is the control plane shared by every test of this package.
var env *testenv.Env

func TestMain(m *testing.M) {
	var stop func()
	var err error
	env, stop, err = testenv.StartShared()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// The rules' messages, shared with the e2e suite (internal/testenv/messages.go).
const (
	msgTypeEnum       = testenv.MsgTypeEnum
	msgTypeImmutable  = testenv.MsgTypeImmutable
	msgVersionEmpty   = testenv.MsgVersionEmpty
	msgVersionForm    = testenv.MsgVersionForm
	msgReplicasRange  = testenv.MsgReplicasRange
	msgStoragePos     = testenv.MsgStoragePos
	msgStorageShrink  = testenv.MsgStorageShrink
	msgEnvironment    = testenv.MsgEnvironment
	msgProdReplicas   = testenv.MsgProdReplicas
	msgProdLimits     = testenv.MsgProdLimits
	msgPostgresMajor  = testenv.MsgPostgresMajor
	msgMySQLDowngrade = testenv.MsgMySQLDowngrade
	msgPGVersions     = testenv.MsgPostgresVersions
	msgMySQLVersions  = testenv.MsgMySQLVersions
	msgAlpine         = testenv.MsgAlpine
	msgSchedule       = testenv.MsgSchedule
	msgRetention      = testenv.MsgRetention
	msgBackupSize     = testenv.MsgBackupSize
	// msgRequired is the apiserver's own message for a missing required field.
	msgRequired = "Required value"
	// msgRulesNotChecked is the apiserver's note that CEL rules were skipped
	// because of a schema error (a missing required field).
	msgRulesNotChecked = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
	// msgNonNegative is the apiserver's own check of the scale
	// subresource's specReplicasPath.
	msgNonNegative = "should be a non-negative integer"
	// msgQuantityPattern starts the apiserver's message for a string that
	// fails the OpenAPI pattern of a resource.Quantity.
	msgQuantityPattern = "in body should match '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$'"
)

// tutorialSample is the tutorial's Database, as a user writes it.
const tutorialSample = `apiVersion: database.example.com/v1
kind: Database
metadata:
  name: my-database
spec:
  type: mysql
  version: "8.0"
  replicas: 1
  storage:
    size: 10Gi
    class: standard
  environment: development
`

// refusal is what the apiserver must answer: an Invalid error with a cause on
// field whose message contains each of msgs. Every other cause must be on
// field too, or be one of others: one bad value must not trip unrelated rules.
type refusal struct {
	field  string
	msgs   []string
	others []cause
}

// cause is a status cause the apiserver may add besides the rule's own.
type cause struct {
	field string // as in metav1.StatusCause.Field ("<nil>" for the object as a whole)
	msg   string // a substring of its message
}

// refused builds a refusal.
func refused(field string, msgs ...string) *refusal {
	return &refusal{field: field, msgs: msgs}
}

// notChecked allows the cause the apiserver adds when a schema error (such as
// a missing required field) stops it from evaluating the CEL rules.
func (r *refusal) notChecked() *refusal {
	r.others = append(r.others, cause{field: "<nil>", msg: msgRulesNotChecked})
	return r
}

// negativeScale allows the scale subresource's own check of specReplicasPath.
func (r *refusal) negativeScale() *refusal {
	r.others = append(r.others, cause{field: ".spec.replicas", msg: msgNonNegative})
	return r
}

// createCase is a Database spec, in YAML as a user writes it, and the
// apiserver's expected answer to creating it (nil: accepted).
type createCase struct {
	name string
	spec string
	want *refusal
}

func TestCreateValidation(t *testing.T) {
	cases := []createCase{
		// spec.type: enum rule and required.
		{name: "type mysql", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}}`},
		{name: "type postgresql", spec: `{type: postgresql, version: "16", storage: {size: 1Gi}}`},
		{name: "type oracle", spec: `{type: oracle, version: "8.0", storage: {size: 1Gi}}`, want: refused("spec.type", msgTypeEnum)},
		{name: "type MySQL in capitals", spec: `{type: MySQL, version: "8.0", storage: {size: 1Gi}}`, want: refused("spec.type", msgTypeEnum)},
		{name: "type empty", spec: `{type: "", version: "8.0", storage: {size: 1Gi}}`, want: refused("spec.type", msgTypeEnum)},
		{name: "type missing", spec: `{version: "8.0", storage: {size: 1Gi}}`, want: refused("spec.type", msgRequired).notChecked()},

		// spec.version: not empty, numeric form, required.
		{name: "version 8.0", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}}`},
		{name: "version 8.4", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}}`},
		{name: "version 8.0.36", spec: `{type: mysql, version: "8.0.36", storage: {size: 1Gi}}`},
		{name: "version 14", spec: `{type: postgresql, version: "14", storage: {size: 1Gi}}`},
		{name: "version 16", spec: `{type: postgresql, version: "16", storage: {size: 1Gi}}`},
		{name: "version 17-trixie", spec: `{type: postgresql, version: "17-trixie", storage: {size: 1Gi}}`},

		// spec.version: only versions the rendered files run.
		{name: "postgresql 18", spec: `{type: postgresql, version: "18", storage: {size: 1Gi}}`},
		{name: "postgresql 14.12-bookworm", spec: `{type: postgresql, version: "14.12-bookworm", storage: {size: 1Gi}}`},
		{name: "postgresql 13", spec: `{type: postgresql, version: "13", storage: {size: 1Gi}}`, want: refused("spec.version", msgPGVersions)},
		{name: "postgresql 12.20", spec: `{type: postgresql, version: "12.20", storage: {size: 1Gi}}`, want: refused("spec.version", msgPGVersions)},
		{name: "postgresql 9.6", spec: `{type: postgresql, version: "9.6", storage: {size: 1Gi}}`, want: refused("spec.version", msgPGVersions)},
		{name: "postgresql 19 (not yet tested)", spec: `{type: postgresql, version: "19", storage: {size: 1Gi}}`, want: refused("spec.version", msgPGVersions)},
		{name: "postgresql 16.4-alpine", spec: `{type: postgresql, version: "16.4-alpine", storage: {size: 1Gi}}`, want: refused("spec.version", msgAlpine)},
		{name: "postgresql 17-alpine3.22", spec: `{type: postgresql, version: "17-alpine3.22", storage: {size: 1Gi}}`, want: refused("spec.version", msgAlpine)},
		{name: "mysql 8", spec: `{type: mysql, version: "8", storage: {size: 1Gi}}`},
		{name: "mysql 8.0.32", spec: `{type: mysql, version: "8.0.32", storage: {size: 1Gi}}`},
		{name: "mysql 8.0.100", spec: `{type: mysql, version: "8.0.100", storage: {size: 1Gi}}`},
		{name: "mysql 8.4.6-oracle", spec: `{type: mysql, version: "8.4.6-oracle", storage: {size: 1Gi}}`},
		{name: "mysql 8.0-debian", spec: `{type: mysql, version: "8.0-debian", storage: {size: 1Gi}}`},
		{name: "mysql 9", spec: `{type: mysql, version: "9", storage: {size: 1Gi}}`},
		{name: "mysql 9.4.0", spec: `{type: mysql, version: "9.4.0", storage: {size: 1Gi}}`},
		{name: "mysql 8.0.31", spec: `{type: mysql, version: "8.0.31", storage: {size: 1Gi}}`, want: refused("spec.version", msgMySQLVersions)},
		{name: "mysql 8.0.22", spec: `{type: mysql, version: "8.0.22", storage: {size: 1Gi}}`, want: refused("spec.version", msgMySQLVersions)},
		{name: "mysql 8.0.3", spec: `{type: mysql, version: "8.0.3", storage: {size: 1Gi}}`, want: refused("spec.version", msgMySQLVersions)},
		{name: "mysql 5.7", spec: `{type: mysql, version: "5.7", storage: {size: 1Gi}}`, want: refused("spec.version", msgMySQLVersions)},
		{name: "mysql 5", spec: `{type: mysql, version: "5", storage: {size: 1Gi}}`, want: refused("spec.version", msgMySQLVersions)},
		{name: "mysql 10", spec: `{type: mysql, version: "10", storage: {size: 1Gi}}`, want: refused("spec.version", msgMySQLVersions)},
		{name: "mysql 16 (a PostgreSQL version)", spec: `{type: mysql, version: "16", storage: {size: 1Gi}}`, want: refused("spec.version", msgMySQLVersions)},
		{name: "version empty", spec: `{type: mysql, version: "", storage: {size: 1Gi}}`, want: refused("spec.version", msgVersionEmpty)},
		{name: "version latest", spec: `{type: mysql, version: latest, storage: {size: 1Gi}}`, want: refused("spec.version", msgVersionForm)},
		{name: "version with shell", spec: `{type: mysql, version: "8.0; rm -rf", storage: {size: 1Gi}}`, want: refused("spec.version", msgVersionForm)},
		{name: "version v16", spec: `{type: postgresql, version: v16, storage: {size: 1Gi}}`, want: refused("spec.version", msgVersionForm)},
		{name: "version four numbers", spec: `{type: mysql, version: "8.0.36.1", storage: {size: 1Gi}}`, want: refused("spec.version", msgVersionForm)},
		{name: "version missing", spec: `{type: mysql, storage: {size: 1Gi}}`, want: refused("spec.version", msgRequired).notChecked()},

		// spec.replicas: 1 to 10.
		{name: "replicas 1", spec: `{type: mysql, version: "8.0", replicas: 1, storage: {size: 1Gi}}`},
		{name: "replicas 10", spec: `{type: mysql, version: "8.0", replicas: 10, storage: {size: 1Gi}}`},
		{name: "replicas 0", spec: `{type: mysql, version: "8.0", replicas: 0, storage: {size: 1Gi}}`, want: refused("spec.replicas", msgReplicasRange)},
		{name: "replicas 11", spec: `{type: mysql, version: "8.0", replicas: 11, storage: {size: 1Gi}}`, want: refused("spec.replicas", msgReplicasRange)},
		{name: "replicas -1", spec: `{type: mysql, version: "8.0", replicas: -1, storage: {size: 1Gi}}`, want: refused("spec.replicas", msgReplicasRange).negativeScale()},

		// spec.storage.size: required, a quantity, positive.
		{name: "storage 10Gi", spec: `{type: mysql, version: "8.0", storage: {size: 10Gi, class: standard}}`},
		{name: "storage 500M", spec: `{type: mysql, version: "8.0", storage: {size: 500M}}`},
		{name: "storage as an integer", spec: `{type: mysql, version: "8.0", storage: {size: 10737418240}}`},
		{name: "storage size missing", spec: `{type: mysql, version: "8.0", storage: {class: standard}}`, want: refused("spec.storage.size", msgRequired).notChecked()},
		{name: "storage missing", spec: `{type: mysql, version: "8.0"}`, want: refused("spec.storage", msgRequired).notChecked()},
		{name: "storage ten gigs", spec: `{type: mysql, version: "8.0", storage: {size: ten gigs}}`, want: refused("spec.storage.size", msgQuantityPattern, msgStoragePos)},
		{name: "storage 0", spec: `{type: mysql, version: "8.0", storage: {size: "0"}}`, want: refused("spec.storage.size", msgStoragePos)},
		{name: "storage 0Gi", spec: `{type: mysql, version: "8.0", storage: {size: 0Gi}}`, want: refused("spec.storage.size", msgStoragePos)},
		{name: "storage -1Gi", spec: `{type: mysql, version: "8.0", storage: {size: -1Gi}}`, want: refused("spec.storage.size", msgStoragePos)},

		// spec.environment: enum.
		{name: "environment development", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, environment: development}`},
		{name: "environment staging", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, environment: staging}`},
		{name: "environment prod", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, environment: prod}`, want: refused("spec.environment", msgEnvironment)},
		{name: "environment Production in capitals", spec: `{type: mysql, version: "8.0", replicas: 2, storage: {size: 1Gi}, environment: Production}`, want: refused("spec.environment", msgEnvironment)},

		// production: at least 2 replicas.
		{name: "production replicas 2", spec: `{type: mysql, version: "8.0", replicas: 2, storage: {size: 1Gi}, environment: production}`},
		{name: "production replicas 1", spec: `{type: mysql, version: "8.0", replicas: 1, storage: {size: 1Gi}, environment: production}`, want: refused("spec.replicas", msgProdReplicas)},
		{name: "production replicas defaulted to 1", spec: `{type: postgresql, version: "16", storage: {size: 1Gi}, environment: production}`, want: refused("spec.replicas", msgProdReplicas)},
		{name: "staging replicas 1", spec: `{type: mysql, version: "8.0", replicas: 1, storage: {size: 1Gi}, environment: staging}`},

		// production: resources, when given, need limits.
		{name: "production without resources", spec: `{type: mysql, version: "8.0", replicas: 2, storage: {size: 1Gi}, environment: production}`},
		{name: "production resources with limits", spec: `{type: mysql, version: "8.0", replicas: 2, storage: {size: 1Gi}, environment: production, resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {cpu: "2", memory: 4Gi}}}`},
		{name: "production resources without limits", spec: `{type: mysql, version: "8.0", replicas: 2, storage: {size: 1Gi}, environment: production, resources: {requests: {cpu: 500m, memory: 1Gi}}}`, want: refused("spec.resources", msgProdLimits)},
		{name: "production resources empty", spec: `{type: mysql, version: "8.0", replicas: 2, storage: {size: 1Gi}, environment: production, resources: {}}`, want: refused("spec.resources", msgProdLimits)},
		{name: "staging resources without limits", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, environment: staging, resources: {requests: {cpu: 500m}}}`},

		// spec.backup.schedule: cron when enabled.
		{name: "schedule 0 2 * * *", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, schedule: "0 2 * * *"}}`},
		{name: "schedule */15 * * * *", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, schedule: "*/15 * * * *"}}`},
		{name: "schedule @daily", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, schedule: "@daily"}}`},
		{name: "schedule 0 3 * * MON-FRI", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, schedule: "0 3 * * MON-FRI"}}`},
		{name: "schedule defaulted", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true}}`},
		{name: "schedule 99 * * * *", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, schedule: "99 * * * *"}}`, want: refused("spec.backup.schedule", msgSchedule)},
		{name: "schedule every day", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, schedule: "every day"}}`, want: refused("spec.backup.schedule", msgSchedule)},
		{name: "schedule four fields", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, schedule: "0 2 * *"}}`, want: refused("spec.backup.schedule", msgSchedule)},
		{name: "schedule empty", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, schedule: ""}}`, want: refused("spec.backup.schedule", msgSchedule)},
		{name: "schedule bad but backup disabled", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: false, schedule: "every day"}}`},

		// spec.backup.retention: days when enabled.
		{name: "retention 7d", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, retention: 7d}}`},
		{name: "retention 30d", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, retention: 30d}}`},
		{name: "retention 7", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, retention: "7"}}`, want: refused("spec.backup.retention", msgRetention)},
		{name: "retention 0d", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, retention: 0d}}`, want: refused("spec.backup.retention", msgRetention)},
		{name: "retention 7days", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, retention: 7days}}`, want: refused("spec.backup.retention", msgRetention)},
		{name: "retention bad but backup disabled", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {retention: 7days}}`},

		// spec.backup.size: positive quantity.
		{name: "backup size 20Gi", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, size: 20Gi}}`},
		{name: "backup size 0", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}, backup: {enabled: true, size: "0"}}`, want: refused("spec.backup.size", msgBackupSize)},
	}

	ns := env.Namespace(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			spec := specFromYAML(g, tc.spec)
			db := newDatabase(ns, fmt.Sprintf("create-%02d", i), spec)

			err := env.Client.Create(ctx(t), db)

			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred(), "the apiserver refused a valid spec")
				got := getSpec(g, ns, db.GetName())
				g.Expect(got).To(containFields(spec), "a field given on create was not stored as given")
				return
			}
			expectRefused(t, g, err, tc.want)
		})
	}
}

func TestTutorialSampleIsAccepted(t *testing.T) {
	// The tutorial's spec plus the CRD's defaults for the fields it omits.
	want := map[string]any{
		"type":        "mysql",
		"version":     "8.0",
		"replicas":    int64(1),
		"storage":     map[string]any{"size": "10Gi", "class": "standard"},
		"environment": "development",
		"backup":      map[string]any{"enabled": false, "schedule": "0 2 * * *", "retention": "7d"},
		"monitoring":  map[string]any{"enabled": false, "metrics": false, "logging": false},
	}

	// kubectl apply --server-side
	t.Run("server-side apply", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.Namespace(t)
		u := sampleFromYAML(g, ns)
		g.Expect(env.Client.Apply(ctx(t), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("kubectl"))).To(Succeed())
		g.Expect(getSpec(g, ns, "my-database")).To(Equal(want))
		expectTypedReadBack(g, ns, "my-database")
	})

	// kubectl create, and kubectl apply of an object that does not exist yet.
	t.Run("create", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.Namespace(t)
		u := sampleFromYAML(g, ns)
		g.Expect(env.Client.Create(ctx(t), u)).To(Succeed())
		g.Expect(getSpec(g, ns, "my-database")).To(Equal(want))
		expectTypedReadBack(g, ns, "my-database")
	})
}

func TestDefaults(t *testing.T) {
	ns := env.Namespace(t)
	cases := []struct {
		name string
		spec string
		want map[string]any
	}{{
		name: "minimal",
		spec: `{type: postgresql, version: "16", storage: {size: 1Gi}}`,
		want: map[string]any{
			"type":        "postgresql",
			"version":     "16",
			"replicas":    int64(1),
			"storage":     map[string]any{"size": "1Gi"},
			"environment": "development",
			"backup":      map[string]any{"enabled": false, "schedule": "0 2 * * *", "retention": "7d"},
			"monitoring":  map[string]any{"enabled": false, "metrics": false, "logging": false},
		},
	}, {
		name: "partial backup and monitoring get the remaining defaults",
		spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}, environment: staging, backup: {enabled: true}, monitoring: {metrics: true}}`,
		want: map[string]any{
			"type":        "mysql",
			"version":     "8.4",
			"replicas":    int64(1),
			"storage":     map[string]any{"size": "1Gi"},
			"environment": "staging",
			"backup":      map[string]any{"enabled": true, "schedule": "0 2 * * *", "retention": "7d"},
			"monitoring":  map[string]any{"enabled": false, "metrics": true, "logging": false},
		},
	}}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			db := newDatabase(ns, fmt.Sprintf("defaults-%02d", i), specFromYAML(g, tc.spec))
			g.Expect(env.Client.Create(ctx(t), db)).To(Succeed())
			g.Expect(getSpec(g, ns, db.GetName())).To(Equal(tc.want))

			typed := expectTypedReadBack(g, ns, db.GetName())
			g.Expect(typed.Spec.Replicas).To(Equal(ptr.To[int32](1)))
		})
	}
}

// updateCase creates a Database from spec, then merge-patches it with patch
// (as `kubectl patch --type merge` does) and expects want (nil: accepted).
type updateCase struct {
	name  string
	spec  string
	patch string
	want  *refusal
}

func TestTransitionRules(t *testing.T) {
	cases := []updateCase{
		// spec.type is immutable.
		{name: "type mysql to postgresql", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}}`, patch: `{type: postgresql, version: "16"}`, want: refused("spec.type", msgTypeImmutable)},
		{name: "type postgresql to mysql", spec: `{type: postgresql, version: "16", storage: {size: 1Gi}}`, patch: `{type: mysql, version: "8.4"}`, want: refused("spec.type", msgTypeImmutable)},
		{name: "type unchanged", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}}`, patch: `{type: mysql, replicas: 3}`},

		// spec.storage.size never shrinks.
		{name: "storage 10Gi to 20Gi", spec: `{type: mysql, version: "8.0", storage: {size: 10Gi}}`, patch: `{storage: {size: 20Gi}}`},
		{name: "storage 10Gi to 10240Mi", spec: `{type: mysql, version: "8.0", storage: {size: 10Gi}}`, patch: `{storage: {size: 10240Mi}}`},
		{name: "storage 10Gi to 5Gi", spec: `{type: mysql, version: "8.0", storage: {size: 10Gi}}`, patch: `{storage: {size: 5Gi}}`, want: refused("spec.storage.size", msgStorageShrink)},
		{name: "storage 10Gi to 10G", spec: `{type: mysql, version: "8.0", storage: {size: 10Gi}}`, patch: `{storage: {size: 10G}}`, want: refused("spec.storage.size", msgStorageShrink)},

		// PostgreSQL: the major version is fixed.
		{name: "postgresql 14 to 16", spec: `{type: postgresql, version: "14", storage: {size: 1Gi}}`, patch: `{version: "16"}`, want: refused("spec.version", msgPostgresMajor)},
		{name: "postgresql 16 to 15", spec: `{type: postgresql, version: "16", storage: {size: 1Gi}}`, patch: `{version: "15"}`, want: refused("spec.version", msgPostgresMajor)},
		{name: "postgresql 16 to 16.4", spec: `{type: postgresql, version: "16", storage: {size: 1Gi}}`, patch: `{version: "16.4"}`},
		{name: "postgresql 16.4 to 16.4-bookworm", spec: `{type: postgresql, version: "16.4", storage: {size: 1Gi}}`, patch: `{version: "16.4-bookworm"}`},
		{name: "postgresql 16.4 to 16.4-alpine", spec: `{type: postgresql, version: "16.4", storage: {size: 1Gi}}`, patch: `{version: "16.4-alpine"}`, want: refused("spec.version", msgAlpine)},
		{name: "postgresql 16.4 to 16.2", spec: `{type: postgresql, version: "16.4", storage: {size: 1Gi}}`, patch: `{version: "16.2"}`},

		// MySQL: the version only stays or moves forward.
		{name: "mysql 8.4 to 8.0", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}}`, patch: `{version: "8.0"}`, want: refused("spec.version", msgMySQLDowngrade)},
		{name: "mysql 9.1 to 8.4", spec: `{type: mysql, version: "9.1", storage: {size: 1Gi}}`, patch: `{version: "8.4"}`, want: refused("spec.version", msgMySQLDowngrade)},
		{name: "mysql 8.0 to 8.4", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}}`, patch: `{version: "8.4"}`},
		{name: "mysql 8.0 to 8.0.36", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}}`, patch: `{version: "8.0.36"}`},
		{name: "mysql 8.4 to 9.1", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}}`, patch: `{version: "9.1"}`},
		{name: "mysql 8 to 8.4", spec: `{type: mysql, version: "8", storage: {size: 1Gi}}`, patch: `{version: "8.4"}`},
		{name: "mysql 8.4 to 8", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}}`, patch: `{version: "8"}`},
		{name: "mysql 8 to 8.0 (8 is 8.4)", spec: `{type: mysql, version: "8", storage: {size: 1Gi}}`, patch: `{version: "8.0"}`, want: refused("spec.version", msgMySQLDowngrade)},
		{name: "mysql 9 to 9.1 (9 is the newest 9.x)", spec: `{type: mysql, version: "9", storage: {size: 1Gi}}`, patch: `{version: "9.1"}`, want: refused("spec.version", msgMySQLDowngrade)},
		{name: "mysql 9.1 to 9", spec: `{type: mysql, version: "9.1", storage: {size: 1Gi}}`, patch: `{version: "9"}`},
		{name: "mysql 8 to 9", spec: `{type: mysql, version: "8", storage: {size: 1Gi}}`, patch: `{version: "9"}`},
		{name: "mysql 8.4 to 8.4-oracle", spec: `{type: mysql, version: "8.4", storage: {size: 1Gi}}`, patch: `{version: "8.4-oracle"}`},

		// Validation rules of create also hold on update.
		{name: "update to replicas 11", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}}`, patch: `{replicas: 11}`, want: refused("spec.replicas", msgReplicasRange)},
		{name: "update to production with 1 replica", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}}`, patch: `{environment: production}`, want: refused("spec.replicas", msgProdReplicas)},
		{name: "update to production with 2 replicas", spec: `{type: mysql, version: "8.0", storage: {size: 1Gi}}`, patch: `{environment: production, replicas: 2}`},
	}
	runUpdateCases(t, "update", cases)
}

// runUpdateCases runs each case in parallel on a Database of its own, named
// <prefix>-<index>.
func runUpdateCases(t *testing.T, prefix string, cases []updateCase) {
	t.Helper()
	ns := env.Namespace(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			db := newDatabase(ns, fmt.Sprintf("%s-%02d", prefix, i), specFromYAML(g, tc.spec))
			g.Expect(env.Client.Create(ctx(t), db)).To(Succeed(), "creating the starting Database")
			before := getSpec(g, ns, db.GetName())

			patchSpec := specFromYAML(g, tc.patch)
			patch, err := json.Marshal(map[string]any{"spec": patchSpec})
			g.Expect(err).NotTo(HaveOccurred())
			err = env.Client.Patch(ctx(t), db, client.RawPatch(types.MergePatchType, patch))

			after := getSpec(g, ns, db.GetName())
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred(), "the apiserver refused a valid update")
				g.Expect(after).To(containFields(patchSpec), "the update was not stored as given")
				return
			}
			expectRefused(t, g, err, tc.want)
			g.Expect(after).To(Equal(before), "a refused update changed the stored spec")
		})
	}
}

func TestScaleSubresource(t *testing.T) {
	ns := env.Namespace(t)

	t.Run("scale to 3 sets spec.replicas", func(t *testing.T) {
		g := NewWithT(t)
		db := typedDatabase(ns, "scale-ok", databasev1.Development, 1)
		g.Expect(env.Client.Create(ctx(t), db)).To(Succeed())

		// The operator publishes the pod selector and ready count in status.
		db.Status.Selector = "app.kubernetes.io/instance=scale-ok"
		db.Status.Replicas = 1
		g.Expect(env.Client.Status().Update(ctx(t), db)).To(Succeed())

		scale := &autoscalingv1.Scale{}
		g.Expect(env.Client.SubResource("scale").Get(ctx(t), db, scale)).To(Succeed())
		g.Expect(scale.Spec.Replicas).To(Equal(int32(1)))
		g.Expect(scale.Status.Replicas).To(Equal(int32(1)), "statusReplicasPath .status.replicas")
		g.Expect(scale.Status.Selector).To(Equal("app.kubernetes.io/instance=scale-ok"), "labelSelectorPath .status.selector")

		scale.Spec.Replicas = 3
		g.Expect(env.Client.SubResource("scale").Update(ctx(t), db, client.WithSubResourceBody(scale))).To(Succeed())

		got := &databasev1.Database{}
		g.Expect(env.Client.Get(ctx(t), client.ObjectKeyFromObject(db), got)).To(Succeed())
		g.Expect(got.Spec.Replicas).To(Equal(ptr.To[int32](3)), "specReplicasPath .spec.replicas")
		g.Expect(got.Generation).To(Equal(int64(2)), "a scale is a spec change")
	})

	t.Run("scale to 11 is refused by the replicas rule", func(t *testing.T) {
		g := NewWithT(t)
		db := typedDatabase(ns, "scale-too-many", databasev1.Development, 1)
		g.Expect(env.Client.Create(ctx(t), db)).To(Succeed())
		scale := &autoscalingv1.Scale{}
		g.Expect(env.Client.SubResource("scale").Get(ctx(t), db, scale)).To(Succeed())
		scale.Spec.Replicas = 11
		err := env.Client.SubResource("scale").Update(ctx(t), db, client.WithSubResourceBody(scale))
		expectRefused(t, g, err, refused("spec.replicas", msgReplicasRange))
	})

	t.Run("scaling production to 1 is refused", func(t *testing.T) {
		g := NewWithT(t)
		db := typedDatabase(ns, "scale-prod", databasev1.Production, 2)
		g.Expect(env.Client.Create(ctx(t), db)).To(Succeed())
		scale := &autoscalingv1.Scale{}
		g.Expect(env.Client.SubResource("scale").Get(ctx(t), db, scale)).To(Succeed())
		scale.Spec.Replicas = 1
		err := env.Client.SubResource("scale").Update(ctx(t), db, client.WithSubResourceBody(scale))
		expectRefused(t, g, err, refused("spec.replicas", msgProdReplicas))
	})
}

func TestStatusSubresource(t *testing.T) {
	g := NewWithT(t)
	ns := env.Namespace(t)
	db := typedDatabase(ns, "status", databasev1.Development, 1)
	g.Expect(env.Client.Create(ctx(t), db)).To(Succeed())
	g.Expect(db.Generation).To(Equal(int64(1)))

	// A status update stores status and ignores spec.
	db.Spec.Replicas = ptr.To[int32](5)
	db.Status.Phase = databasev1.PhaseCreating
	db.Status.ObservedGeneration = 1
	g.Expect(env.Client.Status().Update(ctx(t), db)).To(Succeed())

	got := &databasev1.Database{}
	g.Expect(env.Client.Get(ctx(t), client.ObjectKeyFromObject(db), got)).To(Succeed())
	g.Expect(got.Spec.Replicas).To(Equal(ptr.To[int32](1)), "a status update changed spec")
	g.Expect(got.Status.Phase).To(Equal(databasev1.PhaseCreating))
	g.Expect(got.Status.ObservedGeneration).To(Equal(int64(1)))
	g.Expect(got.Generation).To(Equal(int64(1)), "a status update bumped the generation")

	// An update of the main resource stores spec and ignores status.
	got.Spec.Replicas = ptr.To[int32](2)
	got.Status.Phase = databasev1.PhaseFailed
	g.Expect(env.Client.Update(ctx(t), got)).To(Succeed())

	again := &databasev1.Database{}
	g.Expect(env.Client.Get(ctx(t), client.ObjectKeyFromObject(db), again)).To(Succeed())
	g.Expect(again.Spec.Replicas).To(Equal(ptr.To[int32](2)))
	g.Expect(again.Status.Phase).To(Equal(databasev1.PhaseCreating), "a main-resource update changed status")
	g.Expect(again.Generation).To(Equal(int64(2)))
}

func TestCRDAsServed(t *testing.T) {
	g := NewWithT(t)
	crd := &apiextensionsv1.CustomResourceDefinition{}
	g.Expect(env.Client.Get(ctx(t), client.ObjectKey{Name: "databases.database.example.com"}, crd)).To(Succeed())

	g.Expect(crd.Spec.Scope).To(Equal(apiextensionsv1.NamespaceScoped))
	g.Expect(crd.Status.AcceptedNames.Kind).To(Equal("Database"))
	g.Expect(crd.Status.AcceptedNames.ShortNames).To(Equal([]string{"db"}))
	g.Expect(crd.Status.AcceptedNames.Categories).To(Equal([]string{"all"}))
	g.Expect(crd.Spec.Versions).To(HaveLen(1))

	v := crd.Spec.Versions[0]
	g.Expect(v.Name).To(Equal("v1"))
	g.Expect(v.Served && v.Storage).To(BeTrue())
	g.Expect(v.Subresources).NotTo(BeNil())
	g.Expect(v.Subresources.Status).NotTo(BeNil())
	g.Expect(v.Subresources.Scale).To(Equal(&apiextensionsv1.CustomResourceSubresourceScale{
		SpecReplicasPath:   ".spec.replicas",
		StatusReplicasPath: ".status.replicas",
		LabelSelectorPath:  ptr.To(".status.selector"),
	}))

	var columns []string
	for _, c := range v.AdditionalPrinterColumns {
		columns = append(columns, c.Name+"="+c.JSONPath)
	}
	g.Expect(columns).To(Equal([]string{
		"Type=.spec.type",
		"Version=.spec.version",
		"Replicas=.spec.replicas",
		"Environment=.spec.environment",
		"Primary=.status.currentPrimary",
		"Ready=.status.ready",
		"Phase=.status.phase",
		"Age=.metadata.creationTimestamp",
	}))

	// The apiserver accepted every CEL rule (cost and compilation) and serves the CRD.
	var established bool
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established {
			established = c.Status == apiextensionsv1.ConditionTrue
		}
	}
	g.Expect(established).To(BeTrue(), "CRD conditions: %v", crd.Status.Conditions)
}

// ---- helpers ----

// ctx returns a context that ends with the test or after 30 seconds.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// fromYAML parses YAML the way the apiserver's clients do: integers become
// int64, as in objects read back.
func fromYAML(g Gomega, s string) map[string]any {
	j, err := yaml.YAMLToJSON([]byte(s))
	g.Expect(err).NotTo(HaveOccurred(), "YAML %q", s)
	var m map[string]any
	g.Expect(utiljson.Unmarshal(j, &m)).To(Succeed(), "YAML %q", s)
	return m
}

// specFromYAML parses a spec written in YAML.
func specFromYAML(g Gomega, s string) map[string]any {
	return fromYAML(g, s)
}

// sampleFromYAML parses tutorialSample into an object in ns.
func sampleFromYAML(g Gomega, ns string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: fromYAML(g, tutorialSample)}
	u.SetNamespace(ns)
	return u
}

// newDatabase returns an unstructured Database, so tests can send values the
// typed API cannot hold (a size of "ten gigs", a missing required field).
func newDatabase(ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(databasev1.GroupVersion.WithKind("Database"))
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// typedDatabase returns a valid typed Database.
func typedDatabase(ns, name string, environment databasev1.Environment, replicas int32) *databasev1.Database {
	return &databasev1.Database{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: databasev1.DatabaseSpec{
			Type:        databasev1.PostgreSQL,
			Version:     "16",
			Replicas:    ptr.To(replicas),
			Environment: environment,
			Storage:     databasev1.StorageSpec{Size: resource.MustParse("1Gi")},
		},
	}
}

// getSpec reads a Database's spec back from the apiserver.
func getSpec(g Gomega, ns, name string) map[string]any {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(databasev1.GroupVersion.WithKind("Database"))
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g.Expect(env.Client.Get(c, client.ObjectKey{Namespace: ns, Name: name}, u)).To(Succeed())
	spec, ok := u.Object["spec"].(map[string]any)
	g.Expect(ok).To(BeTrue(), "no spec in %v", u.Object)
	return spec
}

// expectTypedReadBack reads a Database back into the Go type: what the
// apiserver stores must decode (quantities parse, numbers fit).
func expectTypedReadBack(g Gomega, ns, name string) *databasev1.Database {
	db := &databasev1.Database{}
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g.Expect(env.Client.Get(c, client.ObjectKey{Namespace: ns, Name: name}, db)).To(Succeed())
	return db
}

// expectRefused checks err against want: an Invalid error whose message
// contains want.msgs, with a cause on want.field carrying each message, and
// no cause on another field.
func expectRefused(t *testing.T, g Gomega, err error, want *refusal) {
	t.Helper()
	g.Expect(err).To(HaveOccurred(), "the apiserver accepted a spec that must be refused with %q", want.msgs)
	t.Logf("apiserver: %v", err)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid (422) error, got %#v", err)
	for _, m := range want.msgs {
		g.Expect(err.Error()).To(ContainSubstring(m))
	}

	status, ok := err.(apierrors.APIStatus)
	g.Expect(ok).To(BeTrue())
	details := status.Status().Details
	g.Expect(details).NotTo(BeNil(), "no details in %v", err)
	var onField []string
	others := slices.Clone(want.others)
causes:
	for _, c := range details.Causes {
		if c.Field == want.field {
			onField = append(onField, c.Message)
			continue
		}
		for i, o := range others {
			if c.Field == o.field && strings.Contains(c.Message, o.msg) {
				others = slices.Delete(others, i, i+1)
				continue causes
			}
		}
		g.Expect(c).To(BeNil(), "a cause on another field than %s; all causes: %+v", want.field, details.Causes)
	}
	g.Expect(others).To(BeEmpty(), "expected causes missing; all causes: %+v", details.Causes)
	joined := strings.Join(onField, "\n")
	for _, m := range want.msgs {
		g.Expect(joined).To(ContainSubstring(m), "no cause on %s says %q; all causes: %+v", want.field, m, details.Causes)
	}
}

// containFields matches a map that holds every key of want with an equal
// value, recursing into nested maps (the apiserver adds defaults).
func containFields(want map[string]any) *containFieldsMatcher {
	return &containFieldsMatcher{want: want}
}

type containFieldsMatcher struct {
	want map[string]any
	diff string
}

func (m *containFieldsMatcher) Match(actual any) (bool, error) {
	got, ok := actual.(map[string]any)
	if !ok {
		return false, fmt.Errorf("containFields expects a map[string]any, got %T", actual)
	}
	m.diff = subsetDiff("spec", m.want, got)
	return m.diff == "", nil
}

func (m *containFieldsMatcher) FailureMessage(actual any) string {
	return fmt.Sprintf("%s\nwant fields %v\ngot %v", m.diff, m.want, actual)
}

func (m *containFieldsMatcher) NegatedFailureMessage(actual any) string {
	return fmt.Sprintf("want %v not to contain %v", actual, m.want)
}

// subsetDiff describes the first field of want missing or different in got,
// or returns "". Values other than objects compare by their JSON form; a
// null in want (a merge patch's removal) wants the field absent.
func subsetDiff(path string, want, got map[string]any) string {
	for k, w := range want {
		p := path + "." + k
		gv, ok := got[k]
		if w == nil {
			if ok {
				return fmt.Sprintf("%s is %v, want it removed", p, gv)
			}
			continue
		}
		if !ok {
			return p + " is missing"
		}
		if wm, ok := w.(map[string]any); ok {
			gm, ok := gv.(map[string]any)
			if !ok {
				return fmt.Sprintf("%s is %v, want an object", p, gv)
			}
			if d := subsetDiff(p, wm, gm); d != "" {
				return d
			}
			continue
		}
		wj, _ := json.Marshal(w)
		gj, _ := json.Marshal(gv)
		if string(wj) != string(gj) {
			return fmt.Sprintf("%s is %v (%T), want %v (%T)", p, gv, gv, w, w)
		}
	}
	return ""
}

// TestSamplesAreAccepted applies every manifest under config/samples as a
// user would (server-side apply), so the README's samples cannot rot.
func TestSamplesAreAccepted(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(env.RepoRoot, "config", "samples", "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("want at least one sample per engine in config/samples, got %v (%v)", files, err)
	}
	// The archive samples name a store and a Secret that make demo's
	// cluster does not have, so they live apart; the API must accept them.
	archived, err := filepath.Glob(filepath.Join(env.RepoRoot, "config", "samples", "archive", "*.yaml"))
	if err != nil || len(archived) < 2 {
		t.Fatalf("want the archive and point-in-time samples in config/samples/archive, got %v (%v)", archived, err)
	}
	files = append(files, archived...)
	engines := map[string]bool{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			g := NewWithT(t)
			raw, err := os.ReadFile(f)
			g.Expect(err).NotTo(HaveOccurred())
			u := &unstructured.Unstructured{Object: fromYAML(g, string(raw))}
			u.SetNamespace(env.Namespace(t))
			g.Expect(env.Client.Apply(ctx(t), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("kubectl"))).To(Succeed())
			typ, _, _ := unstructured.NestedString(u.Object, "spec", "type")
			engines[typ] = true
		})
	}
	NewWithT(t).Expect(engines).To(HaveKey("mysql"))
	NewWithT(t).Expect(engines).To(HaveKey("postgresql"))
}
