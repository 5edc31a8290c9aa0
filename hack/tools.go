//go:build tools

// Package tools pins the code generators in go.mod so hack/update-codegen.sh
// runs the versions the project was generated with.
package tools

import (
	_ "k8s.io/code-generator"
	_ "k8s.io/kube-openapi/cmd/openapi-gen"
)
