package reconcile

import (
	"fmt"
	"strings"
)

// reasonVolumeNearlyFull is the Degraded reason of a data volume that is
// about to fill up.
const reasonVolumeNearlyFull = "VolumeNearlyFull"

// volumeProblem names the pods whose agents report a nearly full data
// volume (instance.Report.VolumeNearlyFull); nil when none does. It says
// what to do, and that nothing is deleted to make room: the operator never
// removes data, and a server that cannot write stops taking writes (a
// PostgreSQL server that cannot write WAL stops) until there is room.
func volumeProblem(ms []member) *degradation {
	var full []string
	for _, m := range ms {
		if r := m.report; m.exists && r != nil && r.VolumeNearlyFull() {
			full = append(full, fmt.Sprintf("%s has %s free of %s", m.name, mebibytes(r.VolumeFreeBytes), mebibytes(r.VolumeBytes)))
		}
	}
	if len(full) == 0 {
		return nil
	}
	return &degradation{reason: reasonVolumeNearlyFull, message: fmt.Sprintf(
		"data volume nearly full: %s; writes fail once it is full (nothing is deleted to make room). "+
			"Grow spec.storage.size (the StorageClass must allow volume expansion), or delete data",
		strings.Join(full, ", "))}
}

func mebibytes(b int64) string {
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
