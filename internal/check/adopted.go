package check

import (
	"github.com/opsready/opsready/internal/lock"
)

// adoptLeaves says, per rule, why `opsready adopt` leaves a finding to the team. A rule not
// listed is one adopt fixes; a finding of such a rule in an adopted project is a defect of
// adopt, and its tests look for exactly that.
var adoptLeaves = map[string]string{
	"svc-image-unpinned":    "adopt does not know which version you run: pin the one `docker compose images` shows",
	"svc-image-floating":    "adopt does not know which version you run: pin the one `docker compose images` shows",
	"svc-db-published":      "who may reach the database is your decision: adopt does not change your ports",
	"svc-secret-literal":    "the value is in your compose file, which adopt does not change (its own jobs read a copy in secrets/): move it to a secrets: file",
	"svc-privileged":        "adopt cannot know what your image needs",
	"svc-docker-socket":     "adopt cannot know what your image needs",
	"svc-host-namespace":    "adopt cannot know what your image needs",
	"svc-cap-add":           "adopt cannot know what your image needs",
	"svc-no-new-privileges": "adopt cannot know whether your image uses setuid programs",
	"svc-read-only":         "adopt cannot know where your image writes",
	"repo-load-test":        "load profiles call your endpoints, which adopt does not know: write one (k6) for your API",
}

// explainAdopted marks the findings of an adopted project with why adopt did not fix them.
// A healthcheck adopt could not determine carries the reason it recorded for that service.
func explainAdopted(fs []Finding, ad *lock.Adopt) {
	if ad == nil {
		return
	}
	healthWhy := map[string]string{}
	for _, s := range ad.Services {
		healthWhy[s.Name] = s.HealthWhy
	}
	for i := range fs {
		f := &fs[i]
		why := adoptLeaves[f.ID]
		switch f.ID {
		case "svc-healthcheck":
			why = healthWhy[f.Service]
		case "svc-depends-condition":
			why = "the dependency has no healthcheck adopt could add, so there is no healthy state to wait for"
		}
		if why == "" {
			why = "adopt should have fixed this: please report it"
		}
		f.AdoptLeft = why
		if f.Fix == adoptFix {
			f.Fix = why
		}
	}
}
