package render

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"

	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// buildConfigMap renders <db>-config: the engine's configuration for the
// environment and its init scripts.
func buildConfigMap(s *spec) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(ConfigMapName(s.name), s.namespace).
		WithLabels(labels(s.db, "database")).
		WithOwnerReferences(ownerReference(s.db)).
		WithData(configFiles(s))
}

// configFiles is the engine's configuration and init scripts, plus the
// restore script when the Database starts from a dump, and the init script
// that marks an initialisation complete (initialise.go).
func configFiles(s *spec) map[string]string {
	files := s.eng.configFiles(s)
	files[initialisedKey] = initialisedScript(s.eng, s)
	switch {
	case s.restoresDump():
		files[restoreScriptKey] = restoreScript(s.eng)
	case s.restoresMySQLArchive():
		files[restoreScriptKey] = mysqlArchiveRestoreScript
	}
	return files
}

// configChecksum hashes the ConfigMap's data in key order. The pod template
// carries it, so a configuration change rolls the pods.
func configChecksum(data map[string]string) string {
	h := sha256.New()
	for _, k := range sortedKeys(data) {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(data[k]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
