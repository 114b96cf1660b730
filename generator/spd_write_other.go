//go:build !unix

package generator

import "io/fs"

func writeNewFile(p string, data []byte, mode fs.FileMode, sync bool) error {
	return writeFile(p, data, mode, sync)
}
