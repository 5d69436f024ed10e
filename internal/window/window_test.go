package window_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/veza/backend/internal/window"
)

func TestPerMinute(t *testing.T) {
	t.Parallel()
	w := window.New(2)
	require.True(t, w.Allow("a"))
	require.False(t, w.Exceeded("a"))
	require.True(t, w.Allow("a"))
	require.True(t, w.Exceeded("a"))
	require.False(t, w.Allow("a"))
	require.True(t, w.Allow("b"), "keys are counted apart")
}

// Past MaxKeys in one minute, new keys share one bucket: memory stays
// bounded and a flood from many addresses is limited as one.
func TestPerMinuteBoundsItsKeys(t *testing.T) {
	t.Parallel()
	w := window.New(2)
	for i := range window.MaxKeys {
		w.Allow(fmt.Sprint("k", i))
	}
	require.True(t, w.Allow("new-1"))
	require.True(t, w.Allow("new-2"))
	require.False(t, w.Allow("new-3"), "the overflow bucket is full")
	require.True(t, w.Allow("k1"), "a key seen before keeps its own count")
}
