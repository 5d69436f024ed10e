package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/veza/backend/internal/servicetest"
	"github.com/veza/backend/store/dbtest"
)

// step is one command of the README's walkthrough and the output shown
// under it ("" when none is shown).
type step struct {
	cmd, want string
}

// readmeWalkthrough reads the block between the walkthrough markers.
func readmeWalkthrough(t *testing.T) []step {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(raw), "<!-- walkthrough -->")
	require.True(t, ok, "README.md has no walkthrough block")
	block, _, ok := strings.Cut(rest, "<!-- /walkthrough -->")
	require.True(t, ok)
	var steps []step
	for _, line := range strings.Split(block, "\n") {
		switch {
		case strings.HasPrefix(line, "```"), strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, "# → "):
			require.NotEmpty(t, steps, "an output before any command")
			require.Empty(t, steps[len(steps)-1].want, "one output line per command")
			steps[len(steps)-1].want = strings.TrimPrefix(line, "# → ")
		case strings.HasPrefix(line, "#"):
		default:
			steps = append(steps, step{cmd: line})
		}
	}
	return steps
}

// wantRE matches an output shown in the README: "…" stands for ids.
func wantRE(want string) *regexp.Regexp {
	parts := strings.Split(want, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, `[^\s"]+`) + "$")
}

// The README's "Try it" block, run as a newcomer would after `make run`:
// each command in one bash session against a started sandbox, each output
// compared with the one the README shows.
func TestReadmeWalkthrough(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "jq"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "the walkthrough needs %s (.ci/run installs it)", tool)
	}
	steps := readmeWalkthrough(t)
	require.Greater(t, len(steps), 15)
	bin, err := servicetest.Build()
	require.NoError(t, err)

	port, err := dbtest.FreePort()
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := startSandbox(t, dbtest.URL(t), map[string]string{"HTTP_ADDR": addr, "PUBLIC_BASE_URL": fmt.Sprintf("http://localhost:%d", port)})

	// The repository's layout as the block expects it: bin/app, docs/try-it.
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	require.NoError(t, os.Symlink(bin, filepath.Join(dir, "bin", "app")))
	require.NoError(t, os.Symlink(filepath.Join(mustAbs(t, "../.."), "docs"), filepath.Join(dir, "docs")))

	local := func(s string) string {
		return strings.NewReplacer("localhost:8080", fmt.Sprintf("localhost:%d", port), "127.0.0.1:8080", addr).Replace(s)
	}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i, st := range steps {
		fmt.Fprintf(&script, "echo '@@step %d'\n%s\n", i, local(st.cmd))
	}
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HTTP_ADDR="+addr)
	began := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(began)
	require.NoError(t, err, "the walkthrough failed:\n%s\nservice logs:\n%s", out, s.logs.String())
	t.Logf("walkthrough: %d commands in %s", len(steps), took.Round(time.Millisecond))
	require.Less(t, took, time.Minute, "the issue's bar: under a minute once the service is up")

	outputs := map[int]string{}
	for _, chunk := range strings.Split(string(out), "@@step ")[1:] {
		n, rest, _ := strings.Cut(chunk, "\n")
		var i int
		_, _ = fmt.Sscan(n, &i)
		outputs[i] = strings.TrimSpace(rest)
	}
	for i, st := range steps {
		if st.want == "" {
			continue
		}
		require.Regexp(t, wantRE(local(st.want)), outputs[i], "README step %d: %s", i, st.cmd)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	require.NoError(t, err)
	return a
}
