//go:build tools

// Package minio pins the MinIO server that hack/build-tool.sh builds; see go.mod.
package minio

import _ "github.com/minio/minio"
