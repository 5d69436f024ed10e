package http

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/veza/backend"
	"github.com/veza/backend/jobs"
	"github.com/veza/backend/store"
)

type refundRequest struct {
	Reason *string `json:"reason"`
}

func (r *refundRequest) Validate() error {
	if r.Reason != nil {
		reason := strings.TrimSpace(*r.Reason)
		if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > 500 {
			return unprocessable("reason", "must be at most 500 characters of text")
		}
		if reason == "" {
			r.Reason = nil
		} else {
			r.Reason = &reason
		}
	}
	return nil
}

var errNotRefundable = veza.Errorf(veza.KindConflict, "order_not_refundable", "only a completed order can be refunded")

// handleRefundOrder is phase 1 of a refund, in one transaction: the refund
// row (pending, no PSP id), the order to refund_pending, and the job that
// submits it to Hyperswitch. A second request finds the order no longer
// completed and gets 409: the status machine makes the call idempotent.
func (s *Server) handleRefundOrder() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if s.opts.Hyperswitch == nil {
			return errPaymentsDisabled
		}
		id, err := uuid.Parse(c.Params("id"))
		if err != nil {
			return errOrderNotFound
		}
		var req refundRequest
		if len(c.Body()) > 0 {
			if err := decodeJSON(c, &req); err != nil {
				return err
			}
		}
		ctx := c.UserContext()
		var refund *store.Refund
		err = s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
			order, err := store.GetOrderForUpdate(ctx, tx, id)
			if errors.Is(err, store.ErrNotFound) || (err == nil && order.BuyerID != currentUser(c).ID) {
				return errOrderNotFound
			}
			if err != nil {
				return err
			}
			if order.Status != veza.OrderCompleted {
				return errNotRefundable
			}
			if refund, err = store.CreateRefund(ctx, tx, order.ID, order.Amount, order.Currency, req.Reason); err != nil {
				return err
			}
			if err := store.TransitionOrder(ctx, tx, order.ID, veza.OrderCompleted, veza.OrderRefundPending); err != nil {
				return err
			}
			_, err = s.opts.River.InsertTx(ctx, tx, jobs.SubmitRefundArgs{RefundID: refund.ID}, nil)
			return err
		})
		if errors.Is(err, veza.ErrStaleState) {
			return errNotRefundable
		}
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"refund": fiber.Map{
			"id": refund.ID, "status": refund.Status, "amount": refund.Amount, "currency": refund.Currency,
		}})
	}
}

// handleAdminTransfers lists transfers for ops, optionally by status.
func (s *Server) handleAdminTransfers() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var status *veza.TransferStatus
		if raw := c.Query("status"); raw != "" {
			st := veza.TransferStatus(raw)
			switch st {
			case veza.TransferPending, veza.TransferCompleted, veza.TransferFailed, veza.TransferPermanentlyFailed,
				veza.TransferReversalPending, veza.TransferReversed:
				status = &st
			default:
				return unprocessable("status", "unknown transfer status %q", truncate(raw, 32))
			}
		}
		limit, err := queryLimit(c, 100, 1000)
		if err != nil {
			return err
		}
		transfers, err := store.ListTransfers(c.UserContext(), s.opts.DB.Primary(), status, limit)
		if err != nil {
			return err
		}
		if transfers == nil {
			transfers = []store.Transfer{}
		}
		return c.JSON(fiber.Map{"transfers": transfers})
	}
}

// handleAdminRetryTransfer moves a failed transfer back to pending and
// enqueues a new payout job, both through the state machine, in one
// transaction.
func (s *Server) handleAdminRetryTransfer() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := uuid.Parse(c.Params("id"))
		if err != nil {
			return veza.Errorf(veza.KindNotFound, "not_found", "transfer not found")
		}
		ctx := c.UserContext()
		var jobID int64
		err = s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
			t, err := store.GetTransferForUpdate(ctx, tx, id)
			if errors.Is(err, store.ErrNotFound) {
				return veza.Errorf(veza.KindNotFound, "not_found", "transfer not found")
			}
			if err != nil {
				return err
			}
			if t.Status != veza.TransferFailed {
				return veza.Errorf(veza.KindConflict, "transfer_not_retryable", "only a failed transfer can be retried; this one is %s", t.Status)
			}
			if err := store.TransitionTransfer(ctx, tx, id, veza.TransferFailed, veza.TransferPending, store.TransferUpdate{ResetRetries: true}); err != nil {
				return err
			}
			res, err := s.opts.River.InsertTx(ctx, tx, jobs.PayoutArgs{TransferID: id}, &s.opts.PayoutInsertOpts)
			if err != nil {
				return err
			}
			jobID = res.Job.ID
			return nil
		})
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"transfer_id": id, "status": veza.TransferPending, "job_id": jobID})
	}
}
