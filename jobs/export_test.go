package jobs

import (
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
)

// PacingMiddleware is the working client's innermost middleware, for tests.
func PacingMiddleware(logger zerolog.Logger) rivertype.WorkerMiddleware {
	return &pacingMiddleware{logger: logger}
}
