//go:build !linux || !(amd64 || arm64)

package generator

func renameNoReplace(from, to string) error { return errNoRenameNoReplace }
