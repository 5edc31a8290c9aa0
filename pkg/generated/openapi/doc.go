// Package openapi holds the generated OpenAPI definitions of the API types,
// served as OpenAPI v2 and v3 for kubectl explain and server-side apply.
package openapi
