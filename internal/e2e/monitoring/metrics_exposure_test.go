package monitoring

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// mexExposure is what one Prometheus job's targets expose: metric name -> label names.
type mexExposure struct {
	exporter string // for messages: the exporter and version, or where the names come from
	metrics  map[string]map[string]bool
}

func (e *mexExposure) add(metric string, lbls ...string) {
	if e.metrics == nil {
		e.metrics = map[string]map[string]bool{}
	}
	if e.metrics[metric] == nil {
		e.metrics[metric] = map[string]bool{}
	}
	for _, l := range lbls {
		e.metrics[metric][l] = true
	}
}

// mexScrape is one capture file: its header and its series.
type mexScrape struct {
	file, exporter, version, flags string
	metrics                        map[string]map[string]bool
}

var mexLabelName = regexp.MustCompile(`(?:^|,)\s*([a-zA-Z_][a-zA-Z0-9_]*)="`)

// mexParseExposition reads the Prometheus text format: sample names (histograms and summaries
// appear as their _bucket/_sum/_count samples) and the label names each one has.
func mexParseExposition(text string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		if strings.HasPrefix(rest, "{") {
			if j := strings.LastIndex(rest, "}"); j > 0 {
				for _, m := range mexLabelName.FindAllStringSubmatch(rest[1:j], -1) {
					out[name][m[1]] = true
				}
			}
		}
	}
	return out
}

// mexLoadScrapes reads every capture of testdata/scrapes by file name.
func mexLoadScrapes(t *testing.T) map[string]mexScrape {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "scrapes", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures in testdata/scrapes (%v)", err)
	}
	out := map[string]mexScrape{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := mexScrape{file: filepath.Base(f), metrics: mexParseExposition(string(b))}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "# mex-exporter: "); ok {
				s.exporter = v
			} else if v, ok := strings.CutPrefix(line, "# mex-version: "); ok {
				s.version = v
			} else if v, ok := strings.CutPrefix(line, "# mex-flags:"); ok {
				s.flags = strings.TrimSpace(v)
			}
		}
		if s.exporter == "" || s.version == "" {
			t.Fatalf("%s: no mex-exporter/mex-version header (see capture.sh)", f)
		}
		out[s.exporter] = s
	}
	return out
}

// mexTextfileMetrics are the series the generated scripts write for node-exporter's textfile
// collector: each `# TYPE name` of a heredoc, with the labels of its sample lines (literal,
// or a `labels="..."`-style variable assigned in the same script).
func mexTextfileMetrics(t *testing.T, dir string, into *mexExposure) {
	t.Helper()
	scripts, _ := filepath.Glob(filepath.Join(dir, "ops", "backup", "*.sh"))
	if len(scripts) == 0 {
		t.Fatalf("%s: no ops/backup/*.sh", dir)
	}
	typeLine := regexp.MustCompile(`(?m)^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) `)
	varLabel := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)=\\"`)
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, m := range typeLine.FindAllStringSubmatch(text, -1) {
			name := m[1]
			into.add(name)
			sample := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{([^}]*)\}`)
			for _, sm := range sample.FindAllStringSubmatch(text, -1) {
				body := sm[1]
				if v, ok := strings.CutPrefix(body, "$"); ok {
					assign := regexp.MustCompile(`(?m)\b` + regexp.QuoteMeta(strings.Trim(v, "{}")) + `="([^\n]*)"`)
					for _, am := range assign.FindAllStringSubmatch(text, -1) {
						for _, lm := range varLabel.FindAllStringSubmatch(am[1], -1) {
							into.add(name, lm[1])
						}
					}
					continue
				}
				for _, lm := range mexLabelName.FindAllStringSubmatch(body, -1) {
					into.add(name, lm[1])
				}
			}
		}
	}
}

// mexExporterService ties a capture to the compose service that runs the exporter.
type mexExporterService struct {
	service, capture string
}

// mexJobs maps each Prometheus job of the generated prometheus.yml to the captures of its
// exporter and the compose service that runs it, for the answers in set and the project's
// compose services.
func mexJobs(set map[string]string, services types.Services) map[string][]mexExporterService {
	probe := "blackbox_exporter-probe-http"
	if set["tls"] == "letsencrypt" {
		probe = "blackbox_exporter-probe"
	}
	jobs := map[string][]mexExporterService{
		"prometheus":        {{"prometheus", "prometheus"}},
		"alertmanager":      {{"alertmanager", "alertmanager"}},
		"node":              {{"node-exporter", "node_exporter"}},
		"cadvisor":          {{"cadvisor", "cadvisor"}},
		"backend":           {{"", "backend-go"}},
		"blackbox":          {{"blackbox", probe}},
		"blackbox-exporter": {{"blackbox", "blackbox_exporter"}},
	}
	dbJob, dbSrcs := mexDBJob(set, services)
	jobs[dbJob] = dbSrcs
	if set["cache"] == "redis" {
		jobs["redis"] = []mexExporterService{{"redis-exporter", "redis_exporter"}}
	}
	return jobs
}

// mexCollectorFlags are the flags of an exporter's command line that change which series it
// exposes: collector switches, and cAdvisor's metric and label selection.
var mexCollectorFlags = regexp.MustCompile(`--(?:no-)?collect(?:or)?\.[a-z_.]+(?:\s|$)|--(?:disable_metrics|store_container_labels|whitelisted_container_labels|docker_only)=\S+`)

// mexServiceFlags returns an exporter service's image version and collector flags.
func mexServiceFlags(s types.ServiceConfig) (version, flags string) {
	args := strings.Join(append(append([]string{}, s.Entrypoint...), s.Command...), " ")
	var found []string
	for _, f := range mexCollectorFlags.FindAllString(args+" ", -1) {
		found = append(found, strings.TrimSpace(f))
	}
	tag := s.Image[strings.LastIndex(s.Image, ":")+1:]
	tag = strings.TrimSuffix(strings.TrimPrefix(tag, "v"), "-alpine")
	return tag, strings.Join(found, " ")
}

// mexExposures builds the exposure of every job for a generated project, and checks that each
// capture was taken at the version and with the collector flags the compose file uses.
func mexExposures(t *testing.T, dir string, set map[string]string, scrapes map[string]mexScrape) map[string]*mexExposure {
	t.Helper()
	p, err := e2eutil.LoadCompose(dir, e2eutil.ProdEnv(), "", e2eutil.MonitoringFiles...)
	if err != nil {
		t.Fatalf("load compose files: %v", err)
	}
	out := map[string]*mexExposure{}
	for job, srcs := range mexJobs(set, p.Services) {
		e := &mexExposure{}
		var names []string
		for _, src := range srcs {
			sc, ok := scrapes[src.capture]
			if !ok {
				t.Errorf("job %s: no capture %s in testdata/scrapes (run capture.sh)", job, src.capture)
				continue
			}
			names = append(names, sc.exporter+" "+sc.version)
			if src.service != "" {
				svc, ok := p.Services[src.service]
				if !ok {
					t.Errorf("job %s: no compose service %s", job, src.service)
				} else if v, f := mexServiceFlags(svc); v != sc.version || f != sc.flags {
					t.Errorf("job %s: compose service %s runs version %s with collector flags %q, but %s was captured at %s with %q: the metrics it exposes differ; rerun testdata/scrapes/capture.sh with the compose file's flags",
						job, src.service, v, f, sc.file, sc.version, sc.flags)
				}
			}
			for m, ls := range sc.metrics {
				e.add(m, "job", "instance")
				for l := range ls {
					e.add(m, l)
				}
			}
		}
		e.exporter = strings.Join(names, " + ")
		if job == "node" {
			tf := &mexExposure{}
			mexTextfileMetrics(t, dir, tf)
			for m, ls := range tf.metrics {
				e.add(m, "job", "instance")
				for l := range ls {
					e.add(m, l)
				}
			}
			e.exporter += " (with the textfile metrics of ops/backup/*.sh)"
		}
		if job == "cadvisor" {
			svc := p.Services["cadvisor"]
			var kept []string
			for _, a := range svc.Command {
				if v, ok := strings.CutPrefix(a, "--whitelisted_container_labels="); ok {
					kept = strings.Split(v, ",")
				}
			}
			for m, ls := range e.metrics {
				if !ls["name"] {
					continue // machine-level series carry no container labels
				}
				e.add(m, "service") // metric_relabel_configs in prometheus.yml
				for _, k := range kept {
					e.add(m, "container_label_"+strings.NewReplacer(".", "_", "-", "_").Replace(k))
				}
			}
		}
		out[job] = e
	}
	return out
}
