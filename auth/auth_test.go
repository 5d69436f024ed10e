package auth_test

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/veza/backend/auth"
)

func TestPasswordHashing(t *testing.T) {
	t.Parallel()
	hash, err := auth.HashPassword("correct horse")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$"))
	require.NotContains(t, hash, "correct horse")

	ok, err := auth.CheckPassword(hash, "correct horse")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = auth.CheckPassword(hash, "correct horsf")
	require.NoError(t, err)
	require.False(t, ok)

	other, err := auth.HashPassword("correct horse")
	require.NoError(t, err)
	require.NotEqual(t, hash, other, "salted")

	for _, bad := range []string{"", "plain", "$argon2id$v=19$m=x$a$b", "$bcrypt$v=19$m=1,t=1,p=1$YQ$YQ", "$argon2id$v=19$m=1,t=1,p=1$!!$YQ"} {
		_, err := auth.CheckPassword(bad, "x")
		require.Error(t, err, bad)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	raw, hash, err := auth.NewToken()
	require.NoError(t, err)
	require.Len(t, raw, 43, "256 bits, base64url")
	sum := sha256.Sum256([]byte(raw))
	require.Equal(t, sum[:], hash)
	require.Equal(t, hash, auth.HashToken(raw))
	raw2, _, _ := auth.NewToken()
	require.NotEqual(t, raw, raw2)
}
