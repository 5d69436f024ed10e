package dbtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// findPGBinary looks for a PostgreSQL server binary on PATH, then in
// Debian's versioned directories.
func FindPGBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) > 0 {
		return matches[len(matches)-1], nil
	}
	return "", fmt.Errorf("%s not found", name)
}

// Cluster is a throwaway PostgreSQL server.
type Cluster struct {
	URL  string // admin URL (user postgres, database postgres)
	Dir  string // data, socket and log; removed by Stop
	Stop func()
	// Halt stops the server (fast shutdown) keeping its data; Resume starts
	// it again on the same port. For outage tests.
	Halt   func() error
	Resume func() error
}

// StartCluster starts a throwaway cluster on a free loopback port with trust
// auth. As root (CI), the server runs as the postgres user: initdb refuses
// root. settings are extra "name=value" server settings (the bench's
// pg_stat_statements).
func StartCluster(initdb string, settings ...string) (*Cluster, error) {
	pgCtl := filepath.Join(filepath.Dir(initdb), "pg_ctl")
	if _, err := os.Stat(pgCtl); err != nil {
		if pgCtl, err = FindPGBinary("pg_ctl"); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "veza-pg-")
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")

	var asUser []string
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root needs a postgres user to own the cluster: %w", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	command := func(args ...string) *exec.Cmd {
		full := append(append([]string{}, asUser...), args...)
		return exec.Command(full[0], full[1:]...)
	}

	if out, err := command(initdb, "-D", dataDir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	port, err := FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", port, dir)
	for _, s := range settings {
		opts += " -c " + s
	}
	if out, err := command(pgCtl, "-D", dataDir, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %v: %s %s", err, out, log)
	}
	stop := func() {
		_ = command(pgCtl, "-D", dataDir, "-m", "immediate", "-w", "stop").Run()
		os.RemoveAll(dir)
	}
	halt := func() error {
		if out, err := command(pgCtl, "-D", dataDir, "-m", "fast", "-w", "stop").CombinedOutput(); err != nil {
			return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
		}
		return nil
	}
	resume := func() error {
		if out, err := command(pgCtl, "-D", dataDir, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput(); err != nil {
			return fmt.Errorf("pg_ctl start: %v: %s", err, out)
		}
		return nil
	}
	return &Cluster{URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), Dir: dir, Stop: stop, Halt: halt, Resume: resume}, nil
}

// FreePort is a TCP port free on loopback now (the bench's listeners use it
// too).
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// riverVersion is River's module version, part of the template's name.
func riverVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if strings.HasPrefix(dep.Path, "github.com/riverqueue/river") {
			return dep.Version
		}
	}
	return "unknown"
}
