// Golden trees contain generated Go modules and packages; this empty module keeps
// `go test ./...` and `go vet ./...` of opsready from walking into them.
module github.com/opsready/opsready/golden

go 1.26
