package project

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/generator"
)

// largest is the stack with the most generated files.
var largest = map[string]string{"frontend": "react", "backend": "node", "db": "mariadb", "cache": "redis"}

func BenchmarkRender(b *testing.B) {
	bp, err := blueprints.Embedded().Open("webapp", "")
	if err != nil {
		b.Fatal(err)
	}
	answers, err := ResolveAnswers(bp, AnswerInputs{Set: largest, Defaults: true, Context: map[string]any{"_dir": "bench"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RenderProject(bp, answers, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	bp, _ := blueprints.Embedded().Open("webapp", "")
	answers, _ := ResolveAnswers(bp, AnswerInputs{Set: largest, Defaults: true, Context: map[string]any{"_dir": "bench"}})
	files, err := RenderProject(bp, answers, "bench")
	if err != nil {
		b.Fatal(err)
	}
	root := b.TempDir()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := generator.Write(filepath.Join(root, fmt.Sprint(i)), files, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNew is the whole of `opsready new --defaults` for the largest stack, without git:
// open the blueprint, resolve answers, render, make secrets and write.
func BenchmarkNew(b *testing.B) {
	root := b.TempDir()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := Create(CreateOptions{Dir: filepath.Join(root, fmt.Sprint(i)), Set: largest, Defaults: true, Version: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpgrade is `opsready upgrade` of the largest stack with a changed answer each
// time (Redis added, then removed): two renders, every file compared or merged, the
// write, the lock file. Force skips the git status check, measured apart below.
func BenchmarkUpgrade(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "p")
	if _, err := Create(CreateOptions{Dir: dir, Set: largest, Defaults: true, Git: true, Version: "bench"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	caches := []string{"none", "redis"}
	i := 0
	for b.Loop() {
		i++
		if _, err := Upgrade(UpgradeOptions{Dir: dir, Set: map[string]string{"cache": caches[i%2]}, Force: true, Version: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpgradeNoop is an upgrade with nothing to do, including the clean-tree check.
func BenchmarkUpgradeNoop(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "p")
	if _, err := Create(CreateOptions{Dir: dir, Set: largest, Defaults: true, Git: true, Version: "bench"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := Upgrade(UpgradeOptions{Dir: dir, Version: "bench"})
		if err != nil || !res.NothingToDo {
			b.Fatalf("%v %v", err, res)
		}
	}
}
