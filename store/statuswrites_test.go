package store_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

// statusWriter matches a write of table.status in SQL: an UPDATE whose SET
// list assigns status (up to its FROM, WHERE or RETURNING: a status read
// in a condition is not a write), or an INSERT naming the column.
type statusWriter struct{ update, set, end, insert *regexp.Regexp }

func statusWrite(table string) statusWriter {
	return statusWriter{
		update: regexp.MustCompile(`(?is)update\s+` + table + `\b.*?\bset\b`),
		set:    regexp.MustCompile(`(?is)\bstatus\s*=`),
		end:    regexp.MustCompile(`(?is)\b(from|where|returning)\b`),
		insert: regexp.MustCompile(`(?is)insert\s+into\s+` + table + `\s*\([^)]*\bstatus\b`),
	}
}

func (w statusWriter) MatchString(s string) bool {
	if w.insert.MatchString(s) {
		return true
	}
	for _, loc := range w.update.FindAllStringIndex(s, -1) {
		list := s[loc[1]:]
		// The SET list ends at the first FROM, WHERE or RETURNING outside
		// parentheses (a subquery in the list stays in it).
		masked, depth := []byte(list), 0
		for i, c := range masked {
			switch {
			case c == '(':
				depth++
			case c == ')':
				depth--
			}
			if depth > 0 || c == ')' {
				masked[i] = ' '
			}
		}
		if end := w.end.FindIndex(masked); end != nil {
			list = list[:end[0]]
		}
		if w.set.MatchString(list) {
			return true
		}
	}
	return false
}

// findStatusWrites returns "file:line" for every Go string (literals and
// the package's string constants, joined with +) outside the allowed
// writers ("file:Func") that writes table's status.
func findStatusWrites(t *testing.T, fsys fs.FS, table string, allowed ...string) []string {
	write := statusWrite(table)
	t.Helper()
	type parsed struct {
		path string
		fset *token.FileSet
		file *ast.File
	}
	var files []parsed
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "vendor" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return fs.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		file, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return err
		}
		files = append(files, parsed{path, fset, file})
		return nil
	})
	require.NoError(t, err)

	// A package's string constants, so that a statement built from one
	// (`"UPDATE seller_transfers SET " + setList`) is read whole.
	consts := map[string]map[string]string{}
	for _, f := range files {
		dir := filepath.Dir(f.path)
		if consts[dir] == nil {
			consts[dir] = map[string]string{}
		}
		for _, decl := range f.file.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if s, ok := joinedString(vs.Values[i], nil); ok {
							consts[dir][name.Name] = s
						}
					}
				}
			}
		}
	}

	var found []string
	for _, f := range files {
		for _, decl := range f.file.Decls {
			fn, isFunc := decl.(*ast.FuncDecl)
			owner := f.path + ":"
			if isFunc {
				owner += fn.Name.Name
			}
			var visit func(n ast.Node) bool
			visit = func(n ast.Node) bool {
				if vs, ok := n.(*ast.ValueSpec); ok {
					// Names being declared are not uses of a constant.
					for _, v := range vs.Values {
						ast.Inspect(v, visit)
					}
					return false
				}
				s, ok := joinedString(n, consts[filepath.Dir(f.path)])
				if !ok {
					return true
				}
				if write.MatchString(s) && !slices.Contains(allowed, owner) {
					found = append(found, f.fset.Position(n.Pos()).String())
				}
				return false
			}
			ast.Inspect(decl, visit)
		}
	}
	return found
}

// joinedString evaluates a string literal, a constant named in consts, or a
// + chain of them.
func joinedString(n ast.Node, consts map[string]string) (string, bool) {
	switch e := n.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.Ident:
		s, ok := consts[e.Name]
		return s, ok
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		l, lok := joinedString(e.X, consts)
		r, rok := joinedString(e.Y, consts)
		if !lok && !rok {
			return "", false
		}
		return l + " " + r, true
	}
	return "", false
}

// TestTransferStatusIsWrittenOnlyByTheStateMachine fails the build if any
// code sets a transfer's status other than through TransitionTransfer.
func TestTransferStatusIsWrittenOnlyByTheStateMachine(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	// agedb's Preload writes months of finished history straight into the
	// tables, for the bench and the index tests; the app never imports it.
	require.Empty(t, findStatusWrites(t, os.DirFS(root), "seller_transfers", "store/transfers.go:TransitionTransfer", "internal/agedb/agedb.go:Preload"),
		"write transfer statuses only through store.TransitionTransfer")
}

// TestDisputeStatusIsWrittenOnlyByTheStateMachine: a dispute's status is
// set when it is first recorded (in whatever status its first event
// carries: events come out of order) and then only by TransitionDispute.
func TestDisputeStatusIsWrittenOnlyByTheStateMachine(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	require.Empty(t, findStatusWrites(t, os.DirFS(root), "disputes", "store/disputes.go:TransitionDispute", "store/disputes.go:InsertDispute",
		"internal/agedb/agedb.go:Preload"),
		"write dispute statuses only through store.TransitionDispute")
}

// TestScannerCatchesViolations proves the check can fail.
func TestScannerCatchesViolations(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"go.mod":             {Data: []byte("module x\n")},
		"store/transfers.go": {Data: []byte("package store\nfunc TransitionTransfer() { _ = `UPDATE seller_transfers SET status = $3 WHERE id = $1 AND status = $2` }\n")},
		"jobs/sneaky.go":     {Data: []byte("package jobs\nfunc f() {\n\t_ = `UPDATE seller_transfers\n\t\tSET error_message = 'x', status = 'completed' WHERE id = $1`\n}\n")},
		"jobs/split.go":      {Data: []byte("package jobs\nconst split = \"UPDATE seller_transfers \" + \"SET status = 'reversed'\"\n")},
		"jobs/insert.go":     {Data: []byte("package jobs\nvar ins = `INSERT INTO seller_transfers (order_id, status) VALUES ($1, 'completed')`\n")},
		"jobs/viaconst.go":   {Data: []byte("package jobs\nconst set = `status = 'failed'`\nfunc g() {\n\t_ = `UPDATE seller_transfers SET ` + set\n}\n")},
		"jobs/fine.go":       {Data: []byte("package jobs\nvar fine = `UPDATE seller_transfers SET retry_count = 1 WHERE id = $1`\nvar r = `SELECT status FROM seller_transfers`\n")},
		"jobs/cond.go":       {Data: []byte("package jobs\nvar c = `UPDATE seller_transfers t SET held_at = now() FROM (SELECT status FROM orders) o WHERE t.status = 'pending' RETURNING status`\n")},
		"jobs/subq.go":       {Data: []byte("package jobs\nvar q = `UPDATE seller_transfers SET note = (SELECT 1 FROM orders WHERE id = 2), status = 'reversed' WHERE id = $1`\n")},
		"jobs/a_test.go":     {Data: []byte("package jobs\nvar q = `UPDATE seller_transfers SET status = 'x'`\n")},
	}
	found := findStatusWrites(t, fsys, "seller_transfers", "store/transfers.go:TransitionTransfer")
	require.Len(t, found, 5, "%v", found)
	require.Contains(t, strings.Join(found, " "), "jobs/subq.go:2", "a FROM inside the SET list does not end it")
	require.NotContains(t, strings.Join(found, " "), "jobs/cond.go", "a status read in FROM, WHERE or RETURNING is not a write")
	require.Contains(t, strings.Join(found, " "), "jobs/viaconst.go:4")
	require.Contains(t, strings.Join(found, " "), "jobs/sneaky.go:3")
	require.Contains(t, strings.Join(found, " "), "jobs/split.go:2")
	require.Contains(t, strings.Join(found, " "), "jobs/insert.go:2")
}
