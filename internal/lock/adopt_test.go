package lock

import (
	"strings"
	"testing"
)

func validAdopt() *Adopt {
	return &Adopt{
		ComposeFiles: []string{"compose.yaml"}, Project: "shop", HealthPath: "/healthz",
		Services: []AdoptService{{Name: "api", Role: "backend"}, {Name: "db", Role: "db", Engine: "postgres"}},
		DB:       &AdoptDB{Service: "db", Engine: "postgres", Image: "postgres:17", User: "app", Database: "app", PasswordFile: "db/password.txt"},
		Renames:  map[string]string{"compose.prod.yaml": "compose.prod.opsready.yaml"},
	}
}

// TestLckAdoptRoundTrip: the adopt record survives Marshal and Parse, and its template form
// has the keys templates read.
func TestLckAdoptRoundTrip(t *testing.T) {
	l := &Lock{Blueprint: "webapp", Version: "1.5.0", Opsready: "t", Answers: map[string]any{}, Files: map[string]Entry{}, Adopt: validAdopt()}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Adopt == nil || got.Adopt.DB.PasswordFile != "db/password.txt" || got.Adopt.Renames["compose.prod.yaml"] != "compose.prod.opsready.yaml" {
		t.Fatalf("round trip: %+v", got.Adopt)
	}
	m := got.Adopt.Template()
	if m["db"].(map[string]any)["service"] != "db" || m["health_path"] != "/healthz" || len(m["services"].([]any)) != 2 {
		t.Errorf("template: %v", m)
	}
	if (*Adopt)(nil).Template() != nil {
		t.Errorf("a nil record must be nil template data (`not ._adopt`)")
	}
}

// TestLckAdoptRejects: a hand-edited record that would break a template fails at parse time,
// naming the key.
func TestLckAdoptRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(a *Adopt)
		want string
	}{
		{"no compose files", func(a *Adopt) { a.ComposeFiles = nil }, "adopt.compose_files"},
		{"absolute compose file", func(a *Adopt) { a.ComposeFiles = []string{"/etc/compose.yaml"} }, "adopt.compose_files"},
		{"escaping compose file", func(a *Adopt) { a.ComposeFiles = []string{"../x.yaml"} }, "adopt.compose_files"},
		{"bad service name", func(a *Adopt) { a.Services[0].Name = "Api Server" }, "adopt.services"},
		{"unsorted services", func(a *Adopt) { a.Services[0], a.Services[1] = a.Services[1], a.Services[0] }, "not sorted"},
		{"db not a service", func(a *Adopt) { a.DB.Service = "pg" }, "adopt.db.service"},
		{"db engine", func(a *Adopt) { a.DB.Engine = "mongodb" }, "adopt.db.engine"},
		{"password file escapes", func(a *Adopt) { a.DB.PasswordFile = "../../etc/shadow" }, "adopt.db.password_file"},
		{"cache not a service", func(a *Adopt) { a.Cache = &AdoptCache{Service: "redis"} }, "adopt.cache.service"},
		{"health path not a path", func(a *Adopt) { a.HealthPath = "healthz" }, "adopt.health_path"},
		{"health path with a quote", func(a *Adopt) { a.HealthPath = "/x'; rm -rf /" }, "adopt.health_path"},
		{"rename escapes", func(a *Adopt) { a.Renames = map[string]string{"a": "../a"} }, "adopt.renames"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := validAdopt()
			tc.edit(a)
			l := &Lock{Blueprint: "webapp", Version: "1.5.0", Answers: map[string]any{}, Files: map[string]Entry{}, Adopt: a}
			b, err := l.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
