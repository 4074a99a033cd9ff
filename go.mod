module github.com/thinctl/thinctl

go 1.26.8

require (
	github.com/google/uuid v1.6.0
	github.com/pkg/errors v0.9.1
	golang.org/x/sys v0.49.0
)
