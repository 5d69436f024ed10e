package http

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/veza/backend"
	"github.com/veza/backend/settle"
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

// handleRefundOrder is phase 1 of a refund (settle.RequestRefund), in one
// transaction. A second request finds the order no longer completed and
// gets 409.
func (s *Server) handleRefundOrder() fiber.Handler {
	return func(c *fiber.Ctx) error {
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
		if s.opts.Hyperswitch == nil {
			return errPaymentsDisabled
		}
		ctx := c.UserContext()
		var refund *store.Refund
		err = s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
			refund, err = s.opts.Settle.RequestRefund(ctx, tx, s.opts.Inserter, settle.RefundRequest{OrderID: id, BuyerID: currentUser(c).ID, Reason: req.Reason})
			return err
		})
		if errors.Is(err, veza.ErrStaleState) {
			return settle.ErrNotRefundable
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
				veza.TransferReversalPending, veza.TransferReversalFailed, veza.TransferReversed:
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

// handleAdminRetryTransfer is an operator's retry of a failed payout or a
// reversal_failed transfer (settle.RetryTransfer), in one transaction.
func (s *Server) handleAdminRetryTransfer() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := uuid.Parse(c.Params("id"))
		if err != nil {
			return errTransferNotFound
		}
		ctx := c.UserContext()
		var jobID int64
		var status veza.TransferStatus
		err = s.opts.DB.InTx(ctx, func(tx pgx.Tx) error {
			jobID, status, err = s.opts.Settle.RetryTransfer(ctx, tx, s.opts.Inserter, id)
			return err
		})
		if errors.Is(err, store.ErrNotFound) {
			return errTransferNotFound
		}
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"transfer_id": id, "status": status, "job_id": jobID})
	}
}

var errTransferNotFound = veza.Errorf(veza.KindNotFound, "not_found", "transfer not found")

type bulkRetryRequest struct {
	Status string `json:"status"`
}

func (r *bulkRetryRequest) Validate() error {
	for _, st := range settle.Retryable {
		if r.Status == string(st) {
			return nil
		}
	}
	return unprocessable("status", "must be failed or reversal_failed")
}

// maxBulkRetry bounds one bulk retry's transaction; the operator repeats
// the call while it answers enqueued > 0.
const maxBulkRetry = 1000

// handleAdminRetryTransfers retries every transfer in one retryable status
// (after an outage), each as handleAdminRetryTransfer would.
func (s *Server) handleAdminRetryTransfers() fiber.Handler {
	return func(c *fiber.Ctx) error {
		req := requestOf[bulkRetryRequest](c)
		ctx := c.UserContext()
		var n int
		err := s.opts.DB.InTx(ctx, func(tx pgx.Tx) (err error) {
			n, err = s.opts.Settle.RetryTransfers(ctx, tx, s.opts.Inserter, veza.TransferStatus(req.Status), maxBulkRetry)
			return err
		})
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"enqueued": n})
	}
}
