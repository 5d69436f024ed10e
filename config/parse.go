package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// parser reads variables, records which were set and collects malformed
// values as problems instead of failing.
type parser struct {
	getenv   func(string) string
	problems []*VarError
	set      map[string]bool
}

func (p *parser) record(name string) string {
	v := p.getenv(name)
	if v != "" {
		p.set[name] = true
	}
	return v
}

func (p *parser) raw(name string) (string, bool) {
	v := strings.TrimSpace(p.record(name))
	return v, v != ""
}

func (p *parser) str(name, def string) string {
	if v, ok := p.raw(name); ok {
		return v
	}
	return def
}

func (p *parser) fail(name, reason string) {
	p.problems = append(p.problems, &VarError{Name: name, Reason: reason})
}

func (p *parser) boolean(name string, def bool) bool {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(name, fmt.Sprintf("must be true or false, got %q; using %t", v, def))
		return def
	}
	return b
}

func (p *parser) integer(name string, def, lo, hi int) int {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.fail(name, fmt.Sprintf("must be an integer between %d and %d, got %q; using %d", lo, hi, v, def))
		return def
	}
	return n
}

func (p *parser) duration(name string, def, lo time.Duration) time.Duration {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	d, err := parseDuration(v)
	if err != nil || d < lo {
		p.fail(name, fmt.Sprintf("must be a duration such as 30s, 5m or 7d, at least %s; got %q; using %s", lo, v, def))
		return def
	}
	return d
}

// parseDuration is time.ParseDuration plus a leading whole number of days
// ("7d", "1d12h"), as operators write retention and grace periods.
func parseDuration(v string) (time.Duration, error) {
	days, rest, ok := strings.Cut(v, "d")
	if !ok {
		return time.ParseDuration(v)
	}
	n, err := strconv.Atoi(days)
	if err != nil || n < 0 || n > 36500 {
		return 0, fmt.Errorf("bad number of days in %q", v)
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest == "" {
		return d, nil
	}
	r, err := time.ParseDuration(rest)
	if err != nil || r < 0 {
		return 0, fmt.Errorf("bad duration %q", v)
	}
	return d + r, nil
}

func (p *parser) logLevel(name string, def zerolog.Level) zerolog.Level {
	v, ok := p.raw(name)
	if !ok {
		return def
	}
	l, err := zerolog.ParseLevel(strings.ToLower(v))
	if err != nil || l == zerolog.NoLevel {
		p.fail(name, fmt.Sprintf("must be debug, info, warn or error, got %q; using %s", v, def))
		return def
	}
	return l
}
