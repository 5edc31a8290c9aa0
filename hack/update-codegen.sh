#!/usr/bin/env bash
# Regenerates deepcopy, conversion, defaults, OpenAPI, the clientset with apply
# configurations, listers and informers from the types in pkg/apis.
set -o errexit -o nounset -o pipefail

SCRIPT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$SCRIPT_ROOT"
go mod download k8s.io/code-generator
CODEGEN_PKG=$(go list -m -f '{{.Dir}}' k8s.io/code-generator)
# kube_codegen.sh installs the generators with `go install`; keep them out of the
# user's GOBIN and build them from the version pinned in go.mod.
export GOBIN=${GOBIN:-$SCRIPT_ROOT/_output/bin}
mkdir -p "$GOBIN"
source "${CODEGEN_PKG}/kube_codegen.sh"

THIS_PKG=example.com/backup-operator
BOILERPLATE=$SCRIPT_ROOT/hack/boilerplate.go.txt

kube::codegen::gen_helpers \
    --boilerplate "$BOILERPLATE" \
    "$SCRIPT_ROOT/pkg/apis"

kube::codegen::gen_openapi \
    --extra-pkgs k8s.io/apimachinery/pkg/util/intstr \
    --output-dir "$SCRIPT_ROOT/pkg/generated/openapi" \
    --output-pkg "$THIS_PKG/pkg/generated/openapi" \
    --report-filename "$SCRIPT_ROOT/hack/api-rule-violations.list" \
    --update-report \
    --output-model-name-file zz_generated.model_name.go \
    --boilerplate "$BOILERPLATE" \
    "$SCRIPT_ROOT/pkg/apis"

kube::codegen::gen_client \
    --with-watch \
    --with-applyconfig \
    --applyconfig-openapi-schema <(go run "$THIS_PKG/pkg/generated/openapi/cmd/models-schema") \
    --output-dir "$SCRIPT_ROOT/pkg/generated" \
    --output-pkg "$THIS_PKG/pkg/generated" \
    --boilerplate "$BOILERPLATE" \
    "$SCRIPT_ROOT/pkg/apis"
