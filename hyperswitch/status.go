package hyperswitch

// A payment's status (IntentStatus, crates/common_enums; PSP.md) read for
// what it says of the buyer's money. Settle and reconcile decide with
// these, so the two read a status the same way.

// PaymentFinal reports whether a payment status is the payment's last
// word: nothing moves it by itself any more (a manual retry may still
// follow a failure).
func PaymentFinal(status string) bool {
	switch status {
	case "succeeded", "failed", "cancelled", "cancelled_post_capture", "expired", "partially_captured":
		return true
	}
	return false
}

// PaymentTookMoney reports whether the payment holds the buyer's money,
// all or part of it.
func PaymentTookMoney(status string) bool {
	switch status {
	case "succeeded", "partially_captured", "partially_captured_and_capturable":
		return true
	}
	return false
}

// PaymentWaiting reports whether a status that is not final moves by
// itself (the buyer, the connector or a capture moves it). conflicted and
// requires_merchant_action wait for a person; an unknown status is
// neither.
func PaymentWaiting(status string) bool {
	switch status {
	case "processing", "requires_customer_action", "requires_payment_method", "requires_confirmation",
		"requires_capture", "partially_authorized_and_requires_capture", "partially_captured_and_capturable":
		return true
	}
	return false
}

// PaymentSupersedes reports whether next, reported after current (events
// are not ordered), is the payment's newer word:
//   - cancelled_post_capture (the money went back) is never superseded;
//   - a status that is not final never supersedes a final one;
//   - a failure, cancel or expiry (an earlier attempt's, before a manual
//     retry) never supersedes money taken;
//   - the same status again, or none, is nothing new.
func PaymentSupersedes(current, next string) bool {
	switch {
	case next == "" || next == current || current == "cancelled_post_capture":
		return false
	case PaymentFinal(current) && !PaymentFinal(next):
		return false
	case (current == "succeeded" || current == "partially_captured") && (next == "failed" || next == "cancelled" || next == "expired"):
		return false
	}
	return true
}
