package mail

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
)

// TLSPolicy says how the SMTP connection is secured (SMTP_TLS).
type TLSPolicy string

const (
	TLSMandatory     TLSPolicy = "mandatory"     // STARTTLS required (go-mail's default)
	TLSOpportunistic TLSPolicy = "opportunistic" // STARTTLS when offered
	TLSNone          TLSPolicy = "none"          // plain text: local catchers only
	TLSImplicit      TLSPolicy = "implicit"      // SMTPS, TLS from the first byte
)

// Config is the SMTP configuration. An empty Host means log-only sending.
type Config struct {
	Host     string
	Port     int // 0: go-mail picks the port that fits TLS
	Username string
	Password string
	From     string
	FromName string
	TLS      TLSPolicy
}

// Enabled reports whether mail goes to an SMTP server (otherwise it is logged).
func (c Config) Enabled() bool { return c.Host != "" }

// ConfigError names the variable whose value could not be used.
type ConfigError struct {
	Var    string
	Reason string
}

func (e *ConfigError) Error() string { return e.Var + ": " + e.Reason }

// deprecatedNames maps each canonical variable to the old name still read as a
// fallback until v1.1.0.
var deprecatedNames = []struct{ canonical, deprecated string }{
	{"SMTP_USERNAME", "SMTP_USER"},
	{"SMTP_FROM", "FROM_EMAIL"},
	{"SMTP_FROM_NAME", "FROM_NAME"},
}

// LoadConfig reads the SMTP settings without logging deprecation warnings.
func LoadConfig(getenv func(string) string) (Config, []*ConfigError) {
	return LoadConfigWithLogger(getenv, nil)
}

// LoadConfigWithLogger is the one SMTP loader. Canonical names win silently;
// a deprecated name used as a fallback logs one structured warning on logger
// (which may be nil). No host or port default is injected: the service must
// never mail a host nobody configured. Malformed values are returned as
// errors naming the variable, and the field keeps its safe default.
func LoadConfigWithLogger(getenv func(string) string, logger *zerolog.Logger) (Config, []*ConfigError) {
	var problems []*ConfigError
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }

	values := map[string]string{}
	for _, n := range deprecatedNames {
		v := get(n.canonical)
		if v == "" {
			if old := get(n.deprecated); old != "" {
				v = old
				if logger != nil {
					logger.Warn().
						Str("deprecated_var", n.deprecated).
						Str("use_instead", n.canonical).
						Str("remove_in", "v1.1.0").
						Msg("deprecated environment variable read as a fallback")
				}
			}
		}
		values[n.canonical] = v
	}

	cfg := Config{
		Host:     get("SMTP_HOST"),
		Username: values["SMTP_USERNAME"],
		Password: getenv("SMTP_PASSWORD"), // passwords may legitimately carry spaces
		From:     values["SMTP_FROM"],
		FromName: values["SMTP_FROM_NAME"],
		TLS:      TLSMandatory,
	}

	if raw := get("SMTP_PORT"); raw != "" {
		port, err := strconv.Atoi(raw)
		if err != nil || port < 1 || port > 65535 {
			problems = append(problems, &ConfigError{Var: "SMTP_PORT", Reason: fmt.Sprintf("must be a port number between 1 and 65535, got %q", raw)})
		} else {
			cfg.Port = port
		}
	}

	if raw := get("SMTP_TLS"); raw != "" {
		switch p := TLSPolicy(raw); p {
		case TLSMandatory, TLSOpportunistic, TLSNone, TLSImplicit:
			cfg.TLS = p
		default:
			problems = append(problems, &ConfigError{Var: "SMTP_TLS", Reason: fmt.Sprintf("must be one of mandatory, opportunistic, none, implicit; got %q", raw)})
		}
	}
	return cfg, problems
}
