package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/veza/backend/store/dbtest"
)

// make run on a busy machine: when the local PostgreSQL's port is taken,
// scripts/pg-local.sh stops at once and names the port, the log file and
// the variable to set (it used to print only pg_ctl's "could not start
// server / Examine the log output").
func TestMakeRunPostgresPortTaken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	data := t.TempDir()
	cmd := exec.Command("../../scripts/pg-local.sh", "start")
	cmd.Env = append(cmd.Environ(), fmt.Sprintf("VEZA_DEV_PG_PORT=%d", port), "VEZA_DEV_DATA_DIR="+data)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "%s", out)
	msg := string(out)
	require.Contains(t, msg, fmt.Sprintf("port %d on 127.0.0.1 is taken", port))
	require.Contains(t, msg, data+"/pg/server.log", "names the log")
	require.Contains(t, msg, fmt.Sprintf("VEZA_DEV_PG_PORT=%d make run", port+1), "names the variable, with a value to try")
}

// The same for the service's own port.
func TestServeHTTPAddrTaken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	for _, sandbox := range []string{"true", "false"} {
		env := baseEnv(t, dbtest.URL(t))
		env["HTTP_ADDR"], env["SANDBOX_ENABLED"] = ln.Addr().String(), sandbox
		err = run(context.Background(), []string{"app", "serve"}, envOf(env), io.Discard, io.Discard)
		require.ErrorContains(t, err, "error listening on HTTP_ADDR "+ln.Addr().String(), "sandbox %s", sandbox)
	}
}
