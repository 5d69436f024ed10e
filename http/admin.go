package http

import (
	"errors"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/veza/backend"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/store"
)

// handleAdminDisputes lists disputes, optionally of one status: open ones
// first, the nearest challenge deadline first (evidence is submitted in
// Hyperswitch's dashboard before it).
func (s *Server) handleAdminDisputes() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var status *veza.DisputeStatus
		if raw := c.Query("status"); raw != "" {
			st := veza.DisputeStatus(raw)
			if !st.Known() {
				return unprocessable("status", "unknown dispute status %q (opened, challenged, won, lost, accepted, cancelled, expired)", truncate(raw, 32))
			}
			status = &st
		}
		limit, err := queryLimit(c, 100, 1000)
		if err != nil {
			return err
		}
		disputes, err := store.ListDisputes(c.UserContext(), s.opts.DB.ForRead(), status, limit)
		if err != nil {
			return err
		}
		if disputes == nil {
			disputes = []store.DisputeLine{}
		}
		return c.JSON(fiber.Map{"disputes": disputes})
	}
}

type reconcileRequest struct {
	OrderID  *string `json:"order_id"`
	RefundID *string `json:"refund_id"`

	req jobs.ReconcileRequest
}

func (r *reconcileRequest) Validate() error {
	if r.OrderID != nil && r.RefundID != nil {
		return unprocessable("order_id", "give order_id or refund_id, not both")
	}
	parse := func(field string, s *string) (*uuid.UUID, error) {
		if s == nil {
			return nil, nil
		}
		id, err := uuid.Parse(*s)
		if err != nil {
			return nil, unprocessable(field, "must be a UUID")
		}
		return &id, nil
	}
	var err error
	if r.req.OrderID, err = parse("order_id", r.OrderID); err != nil {
		return err
	}
	r.req.RefundID, err = parse("refund_id", r.RefundID)
	return err
}

// handleAdminReconcile enqueues a reconcile now: the whole sweep ({}), one
// order or one refund. It only enqueues; the jobs are in River UI.
func (s *Server) handleAdminReconcile() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var req reconcileRequest
		if len(c.Body()) > 0 {
			if err := decodeJSON(c, &req); err != nil {
				return err
			}
		}
		ids, err := jobs.EnqueueReconcile(c.UserContext(), s.opts.Inserter, s.opts.DB, req.req)
		if errors.Is(err, jobs.ErrReconcileTargetNotFound) {
			return veza.Errorf(veza.KindNotFound, "not_found", "%s", err.Error())
		}
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"job_ids": ids})
	}
}
