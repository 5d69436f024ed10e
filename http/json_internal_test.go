package http

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEscapesNUL(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]bool{
		`{"a":"\u0000"}`:       true,
		`{"a":"x\u0000y"}`:     true,
		`{"a":"\\\u0000"}`:     true,  // a backslash, then NUL
		`{"a":"\\u0000"}`:      false, // a backslash, then the text u0000
		`{"a":"\u00001"}`:      true,
		`{"a":"\u0001"}`:       false,
		`{"a":"\"\u0000"}`:     true,
		`{"a":"plain"}`:        false,
		`{"a":"ends with \\"}`: false,
		`{"a":"\u000`:          false,
	} {
		require.Equal(t, want, escapesNUL([]byte(body)), body)
	}
}
