package v1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// ObjectStoreSpec is a bucket and a path in an S3-compatible object store.
// A Database's archive is the folder <path>/<database name>/ in the bucket.
// The operator sends checksums only when an operation requires them and
// addresses the bucket path-style unless told otherwise, which most stores
// other than AWS need.
//
// +kubebuilder:validation:XValidation:rule="has(self.endpoint) || has(self.region)",message="s3: set endpoint (an S3-compatible store's URL) or region (AWS S3)"
type ObjectStoreSpec struct {
	// Endpoint is the store's URL, such as https://s3.example.com or
	// http://seaweedfs.storage.svc:8333. Empty means AWS S3 in region.
	// Credentials cross the network with every request: use https unless
	// the store is reached over a network you trust.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$')",message="s3.endpoint must be an http:// or https:// URL with a host name or address, an optional port and path, such as https://s3.example.com:9000"
	Endpoint string `json:"endpoint,omitempty"`

	// Bucket is the bucket's name. The operator never creates buckets.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9][a-z0-9.-]*[a-z0-9]$')",message="s3.bucket must be an S3 bucket name: 3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
	Bucket string `json:"bucket"`

	// Path is the folder in the bucket that holds the archives, one
	// subfolder per Database. Empty means the bucket's root.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$') && !self.split('/').exists(p, p == '.' || p == '..')",message="s3.path must be folder names of letters, digits, '.', '_' and '-' separated by '/', without a leading or trailing '/' and without '.' or '..' folders"
	Path string `json:"path,omitempty"`

	// Region is the bucket's region. Stores that ignore regions accept any;
	// defaults to us-east-1.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9-]+$')",message="s3.region must be lowercase letters, digits and '-', such as eu-west-1"
	Region string `json:"region,omitempty"`

	// VirtualHostedStyle addresses the bucket as https://<bucket>.<endpoint
	// host>/ instead of https://<endpoint host>/<bucket>/ (path style, the
	// default, which every S3-compatible store understands).
	// +optional
	VirtualHostedStyle bool `json:"virtualHostedStyle,omitempty"`

	// CredentialsSecret names a Secret in the Database's namespace with the
	// keys access-key-id and secret-access-key (and, for temporary
	// credentials, session-token). The operator only checks that it has
	// the keys (the Database is Degraded until it does); the pods get the
	// keys through environment variables that refer to it, so they appear
	// in no spec, command line, log or Event.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="s3.credentialsSecret must be a Secret name: a DNS-1123 subdomain of lowercase letters, digits, '-' and '.'"
	CredentialsSecret string `json:"credentialsSecret"`

	// CASecret names a Secret in the Database's namespace whose key ca.crt
	// holds the PEM certificate authorities that issued the endpoint's
	// certificate, for a store with a private CA. The system's CAs are
	// trusted too.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="s3.caSecret must be a Secret name: a DNS-1123 subdomain of lowercase letters, digits, '-' and '.'"
	CASecret string `json:"caSecret,omitempty"`
}

// PointInTimeSpec restores the source Database's continuous archive (see
// spec.backup.s3) to a moment: the newest base backup that ended before
// it, then the archived WAL up to it.
type PointInTimeSpec struct {
	// TargetTime is the moment to restore to, in RFC 3339 such as
	// 2026-12-02T23:15:00Z or 2026-12-02T23:15:00.250+01:00: the restored
	// Database holds exactly the transactions committed at or before it.
	// MySQL's binary log stamps events to the second: a MySQL target is in
	// whole seconds, and the restore holds the transactions that began
	// before it.
	// Empty means the end of the archive: everything archived, which is
	// everything committed up to spec.backup.archiveTimeout before the
	// source was lost.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$') && timestamp(self) == timestamp(self)",message="spec.restore.pointInTime.targetTime must be an RFC 3339 time such as 2026-12-02T23:15:00Z"
	TargetTime string `json:"targetTime,omitempty"`

	// S3 is where the source's archive is (<path>/<fromDatabase>/). When
	// unset, this Database's spec.backup.s3 is used: the same bucket and
	// path, the source's folder.
	// +optional
	S3 *ObjectStoreSpec `json:"s3,omitempty"`
}

// ArchiveStatus is the state of a Database's continuous archive.
type ArchiveStatus struct {
	// FirstRecoverableTime is the earliest moment a point-in-time restore
	// can reach: the end of the oldest base backup kept.
	// +optional
	FirstRecoverableTime *metav1.Time `json:"firstRecoverableTime,omitempty"`

	// LastArchivedTime is when the primary last archived a WAL file: a
	// restore to the end of the archive reaches the transactions committed
	// before then.
	// +optional
	LastArchivedTime *metav1.Time `json:"lastArchivedTime,omitempty"`

	// LastArchivedWAL is the name of that WAL file.
	// +optional
	LastArchivedWAL string `json:"lastArchivedWAL,omitempty"`

	// LastFailedTime and LastFailedWAL are the latest archiving failure.
	// +optional
	LastFailedTime *metav1.Time `json:"lastFailedTime,omitempty"`
	// +optional
	LastFailedWAL string `json:"lastFailedWAL,omitempty"`

	// LastBaseBackup is the ID of the newest base backup (the UTC time it
	// started), and LastBaseBackupTime when it ended.
	// +optional
	LastBaseBackup string `json:"lastBaseBackup,omitempty"`
	// +optional
	LastBaseBackupTime *metav1.Time `json:"lastBaseBackupTime,omitempty"`

	// LastVerifiedTime is when the last successful restore check ended, and
	// LastVerifiedBackup the base backup it restored.
	// +optional
	LastVerifiedTime *metav1.Time `json:"lastVerifiedTime,omitempty"`
	// +optional
	LastVerifiedBackup string `json:"lastVerifiedBackup,omitempty"`
}
