package veza

import (
	"fmt"
	"regexp"
)

// Money is always integer minor units plus an ISO 4217 currency.

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// ValidCurrency reports whether c looks like an ISO 4217 code.
func ValidCurrency(c string) bool { return currencyRE.MatchString(c) }

// zeroDecimal lists the common currencies without minor units.
var zeroDecimal = map[string]bool{"JPY": true, "KRW": true, "VND": true, "CLP": true, "ISK": true, "XAF": true, "XOF": true}

// FormatMoney renders minor units for humans (emails): 1999 EUR → "19.99 EUR".
func FormatMoney(amount int64, currency string) string {
	if zeroDecimal[currency] {
		return fmt.Sprintf("%d %s", amount, currency)
	}
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, amount/100, amount%100, currency)
}

// Share is one seller's part of an order.
type Share struct {
	Gross int64 // the seller's items
	Fee   int64 // the platform's part of Gross
	Net   int64 // paid to the seller: Gross - Fee
}

// SplitShare applies the platform fee (basis points) to one seller's gross
// in integer arithmetic. The fee is rounded down, so rounding favours the
// seller, and Net + Fee == Gross exactly: no cent is created or lost.
func SplitShare(gross int64, feeBPS int) Share {
	fee := gross * int64(feeBPS) / 10_000
	return Share{Gross: gross, Fee: fee, Net: gross - fee}
}
