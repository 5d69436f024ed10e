package jobs_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"

	"github.com/stretchr/testify/require"
)

// The payout and reversal workers read the app's clock only through
// clock() (their Now field): a key's age comes from the database's clock
// (store.Transfer.KeyAge), and a time.Since on a key mark would measure it
// on this process's clock, off the database's by any skew (the tests that
// skew Now cannot see a time.Since, which reads the real clock).
func TestTransferWorkersReadTheAppClockOnlyThroughNow(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "transfers.go", nil, 0)
	require.NoError(t, err)
	var found []string
	for _, decl := range file.Decls {
		if fn, ok := decl.(*ast.FuncDecl); ok && fn.Name.Name == "clock" && fn.Recv == nil {
			continue
		}
		ast.Inspect(decl, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "time" && (sel.Sel.Name == "Now" || sel.Sel.Name == "Since" || sel.Sel.Name == "Until") {
				found = append(found, fset.Position(sel.Pos()).String()+": time."+sel.Sel.Name)
			}
			return true
		})
	}
	require.Empty(t, found, "read the app's clock through w.now(), and a key's age through Transfer.KeyAge")
}
