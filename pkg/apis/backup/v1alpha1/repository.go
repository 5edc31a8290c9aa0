package v1alpha1

import "strings"

// S3Location is how the data mover names an S3 repository (its --repo
// value): "s3:<endpoint>/<bucket>[/<prefix>]", for example
// "s3:http://minio.backup-storage.svc:9000/backups/production/postgres-data".
// Validation keeps the endpoint to scheme, host and port and the prefix a
// clean relative path, so the string is unambiguous.
func S3Location(s *S3Storage) string {
	loc := "s3:" + strings.TrimSuffix(s.Endpoint, "/") + "/" + s.Bucket
	if s.Prefix != "" {
		loc += "/" + s.Prefix
	}
	return loc
}

// RepositoryKey identifies a repository among those of one namespace (a
// claim) or of the whole cluster (an S3 location, which Backups of several
// namespaces may share): two Backups with equal keys write into the same
// repository. For S3 it is the location with the endpoint in lowercase (host
// names and schemes are case-insensitive).
func RepositoryKey(s RepositoryStorage) string {
	if s.S3 == nil {
		return s.PVCName
	}
	c := *s.S3
	c.Endpoint = strings.ToLower(c.Endpoint)
	return S3Location(&c)
}

// RepositoryLabelValue is the value of RepositoryLabel on the Jobs that open
// the repository: the claim's name (as label values always were), or for S3
// a readable prefix of the location with a hash of all of it (LabelValue),
// which no claim name equals.
func RepositoryLabelValue(s RepositoryStorage) string {
	return LabelValue(RepositoryKey(s))
}
