package check

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// SARIF 2.1.0, the subset GitHub code scanning reads: one run, the rule catalogue as the
// driver's rules, one result per finding with a physical location relative to the checked
// directory (%SRCROOT%), waived findings as accepted external suppressions.

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
	// OriginalURIBaseIDs leaves %SRCROOT% without a URI: the consumer (GitHub) knows it.
	ColumnKind string `json:"columnKind"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	Help                 sarifText      `json:"help"`
	DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifResult struct {
	RuleID       string             `json:"ruleId"`
	RuleIndex    int                `json:"ruleIndex"`
	Level        string             `json:"level"`
	Message      sarifText          `json:"message"`
	Locations    []sarifLocation    `json:"locations"`
	Suppressions []sarifSuppression `json:"suppressions,omitempty"`
	Properties   map[string]any     `json:"properties,omitempty"`
	// PartialFingerprints keep a finding's identity when lines move.
	PartialFingerprints map[string]string `json:"partialFingerprints"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Status        string `json:"status"`
	Justification string `json:"justification"`
}

func sarifLevel(s Severity) string {
	switch s {
	case Critical, High:
		return "error"
	case Medium:
		return "warning"
	}
	return "note"
}

// securitySeverity is GitHub's 0–10 scale for ordering alerts.
var securitySeverity = map[Severity]string{Critical: "9.5", High: "8.0", Medium: "5.5", Low: "2.0"}

// WriteSARIF writes the report as a SARIF 2.1.0 log.
func WriteSARIF(w io.Writer, r *Report, toolVersion string) error {
	driver := sarifDriver{Name: "opsready", Version: toolVersion, InformationURI: "https://github.com/opsready/opsready"}
	for _, rule := range Rules {
		fix := "see docs/checks.md"
		if rule.Scope == scopeRepo {
			fix = adoptFix
		}
		tags := []string{"production-readiness", rule.Scope}
		if rule.CIS != "" {
			tags = append(tags, "security")
		}
		props := map[string]any{"tags": tags, "security-severity": securitySeverity[rule.Severity], "opsready-severity": rule.Severity.String()}
		if rule.CIS != "" {
			props["cis-docker-benchmark-1.6.0"] = rule.CIS
		}
		driver.Rules = append(driver.Rules, sarifRule{
			ID: rule.ID, Name: ruleName(rule.ID),
			ShortDescription:     sarifText{Text: rule.Title},
			FullDescription:      sarifText{Text: rule.Why},
			Help:                 sarifText{Text: fmt.Sprintf("%s. Source: %s. Fix: %s.", rule.Why, rule.Source, fix)},
			DefaultConfiguration: sarifConfig{Level: sarifLevel(rule.Severity)},
			Properties:           props,
		})
	}
	results := []sarifResult{}
	for _, f := range r.Findings {
		msg := f.Why
		if f.Service != "" {
			msg = "service " + f.Service + ": " + msg
		}
		res := sarifResult{
			RuleID: f.ID, RuleIndex: ruleIndex(f.ID), Level: sarifLevel(f.Severity),
			Message: sarifText{Text: msg + "\nFix:\n" + f.Fix},
			Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{
				ArtifactLocation: sarifArtifact{URI: f.File, URIBaseID: "%SRCROOT%"},
			}}},
			PartialFingerprints: map[string]string{"opsready/v1": f.ID + "/" + f.Service},
		}
		if f.Line > 0 {
			res.Locations[0].PhysicalLocation.Region = &sarifRegion{StartLine: f.Line}
		}
		if f.Service != "" {
			res.Properties = map[string]any{"service": f.Service}
		}
		if f.Waiver != nil {
			res.Suppressions = []sarifSuppression{{Kind: "external", Status: "accepted",
				Justification: fmt.Sprintf("%s (%s:%d)", f.Waiver.Reason, f.Waiver.File, f.Waiver.Line)}}
		}
		results = append(results, res)
	}
	log := sarifLog{
		Schema:  "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{{Tool: sarifTool{Driver: driver}, Results: results, ColumnKind: "unicodeCodePoints"}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

// ruleName turns svc-db-published into SvcDbPublished (SARIF's rule names are identifiers).
func ruleName(id string) string {
	var b strings.Builder
	for _, p := range strings.Split(id, "-") {
		if p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}
