package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// spdMaxArgs answer `new` with the stack that generates the most files of the newest webapp
// (every optional part on: both CI providers, physical backups, an S3 copy, every alert channel).
var spdMaxArgs = []string{
	"--defaults", "--name", "spd", "--domain", "spd.example.org",
	"--frontend", "react", "--backend", "node", "--db", "mariadb", "--cache", "redis", "--ci", "both",
	"--db-backup-method", "physical", "--offsite", "s3", "--offsite-s3-url", "s3:https://s3.example.org/b",
	"--alert-channels", "email,telegram,webhook", "--alert-email-to", "a@b.org", "--smtp-from", "a@b.org",
	"--smtp-smarthost", "smtp.b.org:587", "--smtp-username", "u", "--telegram-chat-id", "123",
}

// BenchmarkSpdVersion is `opsready version` in-process: building the command tree.
func BenchmarkSpdVersion(b *testing.B) {
	for b.Loop() {
		if code := run([]string{"version"}, strings.NewReader(""), io.Discard, io.Discard); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}

// BenchmarkSpdNew is `opsready new` of the maximal stack in-process, with and without git.
func BenchmarkSpdNew(b *testing.B) {
	for _, git := range []bool{true, false} {
		b.Run(fmt.Sprintf("git=%v", git), func(b *testing.B) {
			root := b.TempDir()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				args := append([]string{"new"}, spdMaxArgs...)
				if !git {
					args = append(args, "--no-git")
				}
				args = append(args, filepath.Join(root, fmt.Sprint(i)))
				var errOut strings.Builder
				if code := run(args, strings.NewReader(""), io.Discard, &errOut); code != 0 {
					b.Fatalf("exit %d: %s", code, errOut.String())
				}
			}
		})
	}
}

// BenchmarkSpdNewVsCopy measures SPEC §8's target: the built opsready binary's `new` of the
// maximal stack against a `cp -r` of the tree it wrote, run alternately on the same machine
// so that both see the same load. It reports the medians and their ratio (new/cp, at most 2),
// and the medians of the CPU time (user and system) each used, which a busy machine moves less.
func BenchmarkSpdNewVsCopy(b *testing.B) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		b.Fatalf("building opsready needs the go command: %v", err)
	}
	if _, err := exec.LookPath("cp"); err != nil {
		b.Fatalf("the comparison needs cp: %v", err)
	}
	bin := filepath.Join(b.TempDir(), "opsready")
	if out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	for _, git := range []bool{true, false} {
		b.Run(fmt.Sprintf("git=%v", git), func(b *testing.B) {
			root := b.TempDir()
			var news, cps, newCPU, cpCPU []time.Duration
			i := 0
			for b.Loop() {
				i++
				dir := filepath.Join(root, fmt.Sprint(i))
				args := append(append([]string{"new"}, spdMaxArgs...), "--git="+fmt.Sprint(git), dir)
				t0 := time.Now()
				nc := exec.Command(bin, args...)
				if out, err := nc.CombinedOutput(); err != nil {
					b.Fatalf("opsready new: %v\n%s", err, out)
				}
				t1 := time.Now()
				cc := exec.Command("cp", "-r", dir, dir+".cp")
				if out, err := cc.CombinedOutput(); err != nil {
					b.Fatalf("cp -r: %v\n%s", err, out)
				}
				news, cps = append(news, t1.Sub(t0)), append(cps, time.Since(t1))
				newCPU = append(newCPU, nc.ProcessState.UserTime()+nc.ProcessState.SystemTime())
				cpCPU = append(cpCPU, cc.ProcessState.UserTime()+cc.ProcessState.SystemTime())
				b.StopTimer()
				// Removing is not measured, and one tree at a time keeps the page cache alike.
				if err := os.RemoveAll(dir); err != nil {
					b.Fatal(err)
				}
				if err := os.RemoveAll(dir + ".cp"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			n, c := spdMedian(news), spdMedian(cps)
			b.ReportMetric(float64(n.Microseconds())/1000, "new-ms")
			b.ReportMetric(float64(c.Microseconds())/1000, "cp-ms")
			b.ReportMetric(float64(n)/float64(c), "new/cp")
			b.ReportMetric(float64(spdMedian(newCPU).Microseconds())/1000, "new-cpu-ms")
			b.ReportMetric(float64(spdMedian(cpCPU).Microseconds())/1000, "cp-cpu-ms")
		})
	}
}

func spdMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
