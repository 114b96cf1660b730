// Package generator renders blueprint file trees into memory and writes them to disk.
//
// Rendering is pure and deterministic: the same files, rules and answers give a
// byte-identical tree. Writing is all-or-nothing: a failure leaves the target as it was.
package generator
