package http

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// ParseTrustedProxy reads one TRUSTED_PROXIES entry: a CIDR (10.0.0.0/8)
// or a single address.
func ParseTrustedProxy(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an IP address", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// parseHop reads an X-Forwarded-For entry: an address, or one with a port
// (some balancers write ip:port or [v6]:port).
func parseHop(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, nil
	}
	ap, err := netip.ParseAddrPort(s)
	return ap.Addr(), err
}

// limitKey is the key an abuse limit counts a client under: its address,
// or for IPv6 its /64 (one subscriber gets a whole /64 to rotate through).
func limitKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Unmap().Is6() {
		return ip
	}
	p, _ := a.Prefix(64)
	return p.String()
}

func (s *Server) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the client's address: the peer, unless the peer is a trusted
// proxy (TRUSTED_PROXIES); then X-Forwarded-For is read from the right,
// skipping the trusted hops, and the first other entry is the client. The
// entries left of it are whatever the client wrote and are never believed
// (Fiber's ProxyHeader takes the leftmost valid one, which a client can
// forge through the balancer). The rate limits and the webhook log key on it.
func (s *Server) clientIP(c *fiber.Ctx) string {
	peer := c.Context().RemoteIP().String()
	if len(s.trusted) == 0 {
		return peer
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !s.isTrusted(addr) {
		return peer
	}
	// Every X-Forwarded-For line, in order (a proxy may add its own line
	// instead of appending to the client's).
	var lines []string
	for _, v := range c.Request().Header.PeekAll(fiber.HeaderXForwardedFor) {
		lines = append(lines, string(v))
	}
	hops := strings.Split(strings.Join(lines, ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := parseHop(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer // garbled: the last address we can vouch for
		}
		if !s.isTrusted(hop) {
			return hop.Unmap().String()
		}
		peer = hop.Unmap().String()
	}
	return peer
}
