// Command opsready generates production-ready service repositories from versioned
// blueprints and keeps them up to date.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
