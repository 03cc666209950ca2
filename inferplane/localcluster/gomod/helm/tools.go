//go:build tools

// Package tools records the helm command inferplane builds, so that
// `go mod tidy` keeps every module it needs in go.sum.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
