// Package v1 contains the database.example.com/v1 API: the Database kind,
// its validation (CEL rules in the CRD) and its schema defaults.
//
// +kubebuilder:object:generate=true
// +kubebuilder:ac:generate=true
// +groupName=database.example.com
package v1
