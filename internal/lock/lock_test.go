package lock

import (
	"strings"
	"testing"

	"github.com/opsready/opsready/generator"
)

func TestRoundTrip(t *testing.T) {
	files := generator.Files{
		{Path: "b.txt", Data: []byte("b"), Policy: generator.PolicySeed},
		{Path: "a.txt", Data: []byte("a"), Policy: generator.PolicyMerge},
		{Path: "secrets/db_password", Data: []byte("hunter2")}, // no policy: never locked
	}
	l := New("webapp", "1.0.0", "dev", map[string]any{"db": "postgres", "replicas": 2, "tags": []string{"a"}}, files)
	data, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if !strings.HasPrefix(s, "# Managed by opsready") || strings.Contains(s, "hunter2") || strings.Contains(s, "secrets/") {
		t.Fatalf("lock file:\n%s", s)
	}
	if strings.Index(s, "a.txt") > strings.Index(s, "b.txt") {
		t.Error("files are not sorted")
	}
	again, err := l.Marshal()
	if err != nil || string(again) != s {
		t.Error("marshalling is not deterministic")
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != "1.0.0" || got.Files["a.txt"].SHA256 != generator.HashBytes([]byte("a")) || got.Files["b.txt"].Policy != "seed" || got.Answers["replicas"] != 2 {
		t.Errorf("parsed: %+v", got)
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{"", "blueprint: x\n", "blueprint: x\nversion: 1.0.0\nextra: 1\n", "- a\n"} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}
