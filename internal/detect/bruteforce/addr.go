package bruteforce

import (
	"net/netip"
)

// parseAddr parses an IPv4 or IPv6 address from b without allocating. An IPv6 zone ("%eth0") is
// dropped and IPv4-mapped IPv6 addresses are unmapped, so that "::ffff:192.0.2.7" and
// "192.0.2.7" are one source.
func parseAddr(b []byte) (netip.Addr, bool) {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '.':
			return parseIPv4(b)
		case ':':
			a, ok := parseIPv6(b)
			return a.Unmap(), ok
		}
	}
	return netip.Addr{}, false
}

func parseIPv4(b []byte) (netip.Addr, bool) {
	var out [4]byte
	pos, val, digits := 0, 0, 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			if digits == 1 && val == 0 {
				return netip.Addr{}, false // leading zero, as netip refuses
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return netip.Addr{}, false
			}
		case c == '.':
			if digits == 0 || pos == 3 {
				return netip.Addr{}, false
			}
			out[pos] = byte(val)
			pos, val, digits = pos+1, 0, 0
		default:
			return netip.Addr{}, false
		}
	}
	if pos != 3 || digits == 0 {
		return netip.Addr{}, false
	}
	out[3] = byte(val)
	return netip.AddrFrom4(out), true
}

// parseIPv6 follows net/netip's parser, on bytes and without zones.
func parseIPv6(s []byte) (netip.Addr, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i == len(s)-1 {
				return netip.Addr{}, false
			}
			s = s[:i]
			break
		}
	}
	var ip [16]byte
	ellipsis := -1
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return netip.IPv6Unspecified(), true
		}
	}
	i := 0
	for i < 16 {
		off := 0
		acc := uint32(0)
		for ; off < len(s); off++ {
			c := s[off]
			switch {
			case c >= '0' && c <= '9':
				acc = acc<<4 + uint32(c-'0')
			case c >= 'a' && c <= 'f':
				acc = acc<<4 + uint32(c-'a'+10)
			case c >= 'A' && c <= 'F':
				acc = acc<<4 + uint32(c-'A'+10)
			default:
				goto end
			}
			if off > 3 {
				return netip.Addr{}, false
			}
		}
	end:
		if off == 0 {
			return netip.Addr{}, false
		}
		if off < len(s) && s[off] == '.' {
			if ellipsis < 0 && i != 12 {
				return netip.Addr{}, false
			}
			if i+4 > 16 {
				return netip.Addr{}, false
			}
			v4, ok := parseIPv4(s)
			if !ok {
				return netip.Addr{}, false
			}
			b4 := v4.As4()
			copy(ip[i:], b4[:])
			i += 4
			s = s[len(s):]
			break
		}
		ip[i] = byte(acc >> 8)
		ip[i+1] = byte(acc)
		i += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return netip.Addr{}, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = i
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return netip.Addr{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - i
		for j := i - 1; j >= ellipsis; j-- {
			ip[j+n] = ip[j]
		}
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(ip), true
}
