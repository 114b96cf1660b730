package blueprints

import "embed"

// embedded holds every blueprint version; `all:` keeps dot-files such as .gitignore.
//
//go:embed all:webapp
var embedded embed.FS
