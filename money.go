package veza

import (
	"fmt"
	"math/bits"
	"regexp"
	"time"

	"golang.org/x/text/currency"
)

// Money is always integer minor units plus an ISO 4217 currency.

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// tender is every currency legal tender somewhere today, per x/text's
// CLDR data (no withdrawn codes such as DEM, no metals or fund codes).
var tender = func() map[string]bool {
	set := map[string]bool{}
	for it := currency.Query(currency.Date(time.Now())); it.Next(); {
		set[it.Unit().String()] = true
	}
	return set
}()

// ValidCurrency reports whether c is a current ISO 4217 currency code
// (upper case) that money can be in.
func ValidCurrency(c string) bool { return currencyRE.MatchString(c) && tender[c] }

// isoDigits are ISO 4217's minor units where CLDR's (x/text's) differ: CLDR
// rounds these for display, but amounts in minor units (what the providers
// send) follow ISO.
var isoDigits = map[string]int{"IQD": 3, "IDR": 2, "COP": 2, "PKR": 2, "RSD": 2, "IRR": 2, "LAK": 2, "LBP": 2,
	"MMK": 2, "ALL": 2, "AMD": 2, "SOS": 2, "SYP": 2, "YER": 2, "UZS": 2, "TZS": 2}

// MinorDigits is the number of decimals of a currency's minor unit (JPY 0,
// EUR 2, KWD 3): ISO 4217, from x/text's table with isoDigits' corrections;
// 2 for a code it does not know.
func MinorDigits(c string) int {
	if d, ok := isoDigits[c]; ok {
		return d
	}
	u, err := currency.ParseISO(c)
	if err != nil {
		return 2
	}
	scale, _ := currency.Standard.Rounding(u)
	return scale
}

// FormatMoney renders minor units for humans (emails): 1999 EUR → "19.99
// EUR", 500 JPY → "500 JPY", 1999 KWD → "1.999 KWD".
func FormatMoney(amount int64, cur string) string {
	digits := MinorDigits(cur)
	if digits == 0 {
		return fmt.Sprintf("%d %s", amount, cur)
	}
	sign := ""
	u := uint64(amount)
	if amount < 0 {
		sign, u = "-", uint64(-amount)
	}
	pow := uint64(1)
	for range digits {
		pow *= 10
	}
	return fmt.Sprintf("%s%d.%0*d %s", sign, u/pow, digits, u%pow, cur)
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

// mulDiv is a·num/den and its remainder for 0 ≤ a, 0 < num < den, in 128
// bits: a·num cannot overflow.
func mulDiv(a, num, den int64) (q, r int64) {
	hi, lo := bits.Mul64(uint64(a), uint64(num))
	uq, ur := bits.Div64(hi, lo, uint64(den)) // hi < den: a·num/den ≤ a
	return int64(uq), int64(ur)
}

// ProportionalShares splits num/den of the amounts' total across them in
// proportion, in integer arithmetic: the shares sum exactly to
// floor(total·num/den + 1/2), each is at most its amount, and the cents
// rounding leaves over go to the largest remainders (the first on ties).
// A dispute of part of a payment takes that part back from each seller.
func ProportionalShares(amounts []int64, num, den int64) []int64 {
	shares := make([]int64, len(amounts))
	if den <= 0 || num <= 0 {
		return shares
	}
	if num >= den {
		copy(shares, amounts)
		return shares
	}
	var total int64
	for _, a := range amounts {
		total += a
	}
	target, r := mulDiv(total, num, den)
	if 2*uint64(r) >= uint64(den) {
		target++ // half up
	}
	rem := make([]int64, len(amounts))
	var given int64
	for i, a := range amounts {
		shares[i], rem[i] = mulDiv(a, num, den)
		given += shares[i]
	}
	for ; given < target; given++ {
		best := -1
		for i := range amounts {
			if shares[i] < amounts[i] && (best < 0 || rem[i] > rem[best]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		shares[best]++
		rem[best] = -1
	}
	return shares
}
