package prompts

// For the tests of package prompts_test, which read the embedded blueprints.
const (
	WhenFallback = whenFallback
	PatternHelp  = patternHelp
)
