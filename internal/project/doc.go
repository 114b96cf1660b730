// Package project carries out the commands on a project folder: create a project from a
// blueprint version (resolve answers, render, add secrets and the lock file, write, commit)
// and report its status against the lock file.
package project
