package jobs_test

import (
	"bytes"
	"sync"
	"time"

	"github.com/riverqueue/river"
)

type safeLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *safeLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *safeLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var riverInsertLater = river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)}
