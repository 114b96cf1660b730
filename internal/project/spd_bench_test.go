//go:build unix

package project

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/generator"
)

// spdMax answers the newest webapp with the stack that generates the most files.
var spdMax = map[string]string{
	"name": "spd", "domain": "spd.example.org",
	"frontend": "react", "backend": "node", "db": "mariadb", "cache": "redis", "ci": "both",
	"db_backup_method": "physical", "offsite": "s3", "offsite_s3_url": "s3:https://s3.example.org/b",
	"alert_channels": "email,telegram,webhook", "alert_email_to": "a@b.org", "smtp_from": "a@b.org",
	"smtp_smarthost": "smtp.b.org:587", "smtp_username": "u", "telegram_chat_id": "123",
}

// BenchmarkSpdPhase splits `new` of the maximal stack into its phases.
func BenchmarkSpdPhase(b *testing.B) {
	lib := blueprints.Embedded()
	bp, err := lib.Open("webapp", "")
	if err != nil {
		b.Fatal(err)
	}
	in := AnswerInputs{Set: spdMax, Defaults: true, Context: map[string]any{"_dir": "spd"}}
	answers, err := ResolveAnswers(bp, in)
	if err != nil {
		b.Fatal(err)
	}
	files, err := RenderProject(bp, answers, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("open", func(b *testing.B) {
		defer spdCPU(b)()
		for b.Loop() {
			if _, err := lib.Open("webapp", ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("answers", func(b *testing.B) {
		defer spdCPU(b)()
		for b.Loop() {
			if _, err := ResolveAnswers(bp, in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("render", func(b *testing.B) {
		defer spdCPU(b)()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := RenderProject(bp, answers, "bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
	extra, err := localFiles(bp, TemplateData(bp, answers), files, b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	all := append(append(generator.Files{}, files...), extra...)
	if err := all.Sort(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d files", len(all))
	// The write as `new` makes it: a fresh tree (no fsync per file), then Done.
	b.Run("write", func(b *testing.B) {
		defer spdCPU(b)()
		root := b.TempDir()
		i := 0
		for b.Loop() {
			i++
			tx, err := generator.ApplyChange(filepath.Join(root, fmt.Sprint(i)), generator.Change{Files: all, CreatedRoot: true, Fresh: true})
			if err != nil {
				b.Fatal(err)
			}
			if err := tx.Done(); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The write of upgrade and `new --force`: every file fsynced.
	b.Run("write-synced", func(b *testing.B) {
		defer spdCPU(b)()
		root := b.TempDir()
		i := 0
		for b.Loop() {
			i++
			if err := generator.Write(filepath.Join(root, fmt.Sprint(i)), all, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The commit as `new` makes it (the blobs from memory); git-disk reads the files back.
	for _, c := range []struct {
		name   string
		commit func(dir string) (string, error)
	}{
		{"git", func(dir string) (string, error) { return commitWritten(dir, "bench", all) }},
		{"git-disk", func(dir string) (string, error) { return commitAll(dir, "bench") }},
	} {
		b.Run(c.name, func(b *testing.B) {
			root := b.TempDir()
			for i := range b.N {
				if err := generator.Write(filepath.Join(root, fmt.Sprint(i)), all, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			defer spdCPU(b)()
			for i := range b.N {
				if _, err := c.commit(filepath.Join(root, fmt.Sprint(i))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// spdCPU reports the process's CPU time (user and system) per iteration: unlike the wall
// time, it hardly moves when other work shares the machine. Call as defer spdCPU(b)().
func spdCPU(b *testing.B) func() {
	start := spdRusage(b)
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((spdRusage(b)-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		}
	}
}

func spdRusage(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
