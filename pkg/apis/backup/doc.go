// +k8s:deepcopy-gen=package
// +groupName=backup.example.com

// Package backup is the internal version of the backup.example.com API. The
// server converts every versioned request into these types, validates them and
// stores them; nothing outside the apiserver should depend on them.
package backup
