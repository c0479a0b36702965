package instance

import (
	"encoding/json"
	"fmt"
	"time"
)

// BackupReport is what a base-backup Job's container writes to its
// termination message: the backup it took and the archive's recoverable
// window after retention, or why it failed. The operator reads it into the
// Database's status.archive and BackupReady condition; it carries no
// secret.
type BackupReport struct {
	// ID names the backup taken (the UTC time it started); empty when the
	// backup failed.
	ID string `json:"id,omitempty"`
	// StartTime and EndTime bound the backup.
	StartTime time.Time `json:"startTime,omitzero"`
	EndTime   time.Time `json:"endTime,omitzero"`
	// Size is the backup's size in bytes.
	Size int64 `json:"size,omitempty"`
	// FirstRecoverable is the end of the oldest base backup kept: the
	// earliest moment a restore can reach.
	FirstRecoverable time.Time `json:"firstRecoverable,omitzero"`
	// DeletedBackups and DeletedWAL count what retention removed.
	DeletedBackups int `json:"deletedBackups,omitempty"`
	DeletedWAL     int `json:"deletedWAL,omitempty"`
	// Error is why the backup or retention failed; empty on success.
	Error string `json:"error,omitempty"`
}

// maxTerminationMessage is the kubelet's limit on a termination message.
const maxTerminationMessage = 4096

// String encodes the report for the termination message, shortening a long
// error so that the whole stays within the kubelet's 4096 bytes.
func (b BackupReport) String() string {
	return withinTerminationMessage(&b, &b.Error)
}

// withinTerminationMessage encodes report as JSON, shortening *errText
// (a field of report) until the whole fits a termination message.
func withinTerminationMessage(report any, errText *string) string {
	for {
		data, err := json.Marshal(report)
		if err != nil {
			// The reports hold only strings, numbers and times.
			panic(err)
		}
		if len(data) <= maxTerminationMessage || len(*errText) < 16 {
			return string(data)
		}
		*errText = (*errText)[:len(*errText)-(len(data)-maxTerminationMessage)-8] + "…"
	}
}

// ParseBackupReport decodes a termination message written by String.
func ParseBackupReport(s string) (BackupReport, error) {
	var b BackupReport
	if err := json.Unmarshal([]byte(s), &b); err != nil {
		return BackupReport{}, fmt.Errorf("backup report %q: %w", s, err)
	}
	return b, nil
}

// RestoreCheckReport is what a restore-check Job's container writes to its
// termination message: what it restored, how long it took and what the
// check query answered, or why it failed.
type RestoreCheckReport struct {
	// Backup is the base backup restored.
	Backup string `json:"backup,omitempty"`
	// StartTime and EndTime bound the check: download, recovery and query.
	StartTime time.Time `json:"startTime,omitzero"`
	EndTime   time.Time `json:"endTime,omitzero"`
	// Size is the base backup's size in bytes.
	Size int64 `json:"size,omitempty"`
	// Answer is the check query's answer, at most 200 characters.
	Answer string `json:"answer,omitempty"`
	// Error is why the check failed; empty when it passed.
	Error string `json:"error,omitempty"`
}

// String encodes the report for the termination message, shortening the
// answer and a long error to fit the kubelet's 4096 bytes.
func (r RestoreCheckReport) String() string {
	if len(r.Answer) > 200 {
		r.Answer = r.Answer[:200] + "…"
	}
	return withinTerminationMessage(&r, &r.Error)
}

// ParseRestoreCheckReport decodes a termination message written by String.
func ParseRestoreCheckReport(s string) (RestoreCheckReport, error) {
	var r RestoreCheckReport
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return RestoreCheckReport{}, fmt.Errorf("restore check report %q: %w", s, err)
	}
	return r, nil
}
