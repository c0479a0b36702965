package reconcile

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/example/database-operator/render"
)

// Values a credentials Secret may hold. The operator's own scripts pass
// every value as data (psql variables, quoted SQL literals, environment),
// but the official images' entrypoints do not all: the MySQL image writes
// MYSQL_USER into CREATE USER '…' and MYSQL_DATABASE between backticks
// unescaped. A user-supplied Secret is therefore held to names that need
// no quoting anywhere, and to passwords a process environment can carry.
var (
	// safeUsername fits MySQL's 32-character user names and PostgreSQL's
	// 63-byte identifiers.
	safeUsername = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,31}$`)
	// safeDatabaseName fits both engines' 63/64-character limits; names
	// the operator generates (the Database's name, '-' and '.' as '_')
	// always match.
	safeDatabaseName = regexp.MustCompile(`^[A-Za-z0-9_]{1,63}$`)
)

// maxPasswordBytes bounds a password: long enough for any generator, short
// enough that no engine, configuration file or environment truncates it.
const maxPasswordBytes = 1024

// reservedUsernames are the engines' and the operator's own accounts: an
// application user of the same name would replace them or fail to be
// created.
var reservedUsernames = map[string]bool{
	"root": true, "postgres": true, "mysql": true, render.ReplicationUser: true,
}

// reservedDatabases are the engines' system schemas and templates: with the
// MySQL image, naming one grants the application user all rights on it.
var reservedDatabases = map[string]bool{
	"mysql": true, "information_schema": true, "performance_schema": true, "sys": true,
	"template0": true, "template1": true,
}

// credentialValuesProblem says what in a credentials Secret's data the
// engines cannot be given safely: a missing key, a name outside the safe
// characters or reserved, a password that is empty, holds a NUL (no process
// environment can carry it) or is too long. Messages name the Secret and
// the key, never a password; nil when everything is fine.
func credentialValuesProblem(secret string, data map[string][]byte) *degradation {
	var problems []string
	name := func(key string, re *regexp.Regexp, rule string, reserved map[string]bool) {
		v, ok := data[key]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("key %s is missing", key))
		case !re.Match(v):
			problems = append(problems, fmt.Sprintf("key %s must be %s", key, rule))
		case reserved[strings.ToLower(string(v))]:
			problems = append(problems, fmt.Sprintf("key %s must not be %s, which the engine or the operator uses", key, v))
		case key == render.SecretKeyUsername && strings.HasPrefix(strings.ToLower(string(v)), "pg_"):
			problems = append(problems, fmt.Sprintf("key %s must not start with pg_ (reserved by PostgreSQL)", key))
		}
	}
	name(render.SecretKeyUsername, safeUsername, "1 to 32 letters, digits or '_', not starting with a digit", reservedUsernames)
	name(render.SecretKeyDatabase, safeDatabaseName, "1 to 63 letters, digits or '_'", reservedDatabases)
	for _, key := range []string{render.SecretKeyRootPassword, render.SecretKeyPassword, render.SecretKeyReplicationPassword} {
		v, ok := data[key]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("key %s is missing", key))
		case len(v) == 0:
			problems = append(problems, fmt.Sprintf("key %s is empty", key))
		case bytes.IndexByte(v, 0) >= 0:
			problems = append(problems, fmt.Sprintf("key %s holds a NUL byte, which no process environment can carry", key))
		case len(v) > maxPasswordBytes:
			problems = append(problems, fmt.Sprintf("key %s holds %d bytes; at most %d", key, len(v), maxPasswordBytes))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return &degradation{
		reason: "CredentialsInvalid",
		message: fmt.Sprintf("Secret %s: %s. The database pods are not created or changed until it is fixed.",
			secret, strings.Join(problems, "; ")),
	}
}
