package http

import (
	"context"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/veza/backend/obs"
)

const localUnmatched = "unmatched_route"

// routeUnmatched is the route label of a request no route took (404, 405):
// the raw path would let anyone mint label values.
const routeUnmatched = "unmatched"

// telemetry times and counts each request by its route template
// (veza_http_*) and, with a tracer, makes it a server span that handlers'
// contexts carry (requestContext derives from it). The service is the edge:
// a caller's traceparent is not continued (anyone could pick our trace ids
// or force sampling).
func (s *Server) telemetry() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if s.opts.Metrics == nil && s.opts.Tracer == nil {
			return c.Next()
		}
		start := time.Now()
		method := methodLabel(c.Method())
		var span trace.Span
		if s.opts.Tracer != nil {
			var ctx context.Context
			ctx, span = s.opts.Tracer.Start(context.Background(), method, trace.WithSpanKind(trace.SpanKindServer))
			c.SetUserContext(ctx)
		}
		err := c.Next() // accessLog, inside, has already rendered any error
		status := c.Response().StatusCode()
		route := c.Route().Path
		if unmatched, _ := c.Locals(localUnmatched).(bool); unmatched {
			route = routeUnmatched
		}
		s.opts.Metrics.HTTP(method, route, status, time.Since(start))
		if provider := webhookProviders[strings.ToLower(strings.TrimRight(c.Path(), "/"))]; provider != "" && method == fiber.MethodPost {
			s.opts.Metrics.Webhook(provider, webhookResult(c, status))
		}
		if span != nil {
			span.SetName(method + " " + route)
			span.SetAttributes(
				attribute.String("http.request.method", method),
				attribute.String("http.route", route),
				attribute.Int("http.response.status_code", status),
				attribute.String("veza.request_id", requestID(c)),
			)
			if status >= 500 {
				span.SetStatus(codes.Error, "")
			}
			span.End()
		}
		return err
	}
}

// markUnmatched is the last handler of all: a request that gets here
// matched no route. It passes on, so Fiber still answers 404 or 405.
func markUnmatched(c *fiber.Ctx) error {
	c.Locals(localUnmatched, true)
	return c.Next()
}

// methodLabel keeps the method label to the methods HTTP defines, and
// returns a constant: c.Method() aliases fasthttp's buffer, which the next
// request on the connection overwrites, and a label (or a span attribute
// exported later) must not change under the registry.
func methodLabel(m string) string {
	for _, known := range knownMethods {
		if m == known {
			return known
		}
	}
	return "OTHER"
}

var knownMethods = []string{fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch,
	fiber.MethodDelete, fiber.MethodOptions, fiber.MethodConnect, fiber.MethodTrace}

const localWebhookResult = "webhook_result"

var webhookProviders = map[string]string{
	"/webhooks/hyperswitch": obs.ProviderHyperswitch,
	"/webhooks/stripe":      obs.ProviderStripe,
}

// (Keyed as Fiber routes: case-insensitive, trailing slash ignored, so a
// forged delivery to /webhooks/Stripe/ is counted too.)

// setWebhookResult records what a webhook handler did with the delivery.
func setWebhookResult(c *fiber.Ctx, result string) { c.Locals(localWebhookResult, result) }

// webhookResult is a delivery's result from what its endpoint answered (a
// body refused before the handler ran is too_large too) and what the
// handler recorded.
func webhookResult(c *fiber.Ctx, status int) string {
	r, _ := c.Locals(localWebhookResult).(string)
	switch {
	case status == fiber.StatusRequestEntityTooLarge:
		return obs.WebhookTooLarge
	case r == obs.WebhookSignatureInvalid:
		return r
	case status >= 300 || r == "":
		return obs.WebhookError
	}
	return r
}
