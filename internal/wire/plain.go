package wire

import "unicode/utf8"

// Most of a message is string bytes that need no attention: payloads of
// printable ASCII. The loops that scan, copy and count them look at eight
// bytes at a time, and at single bytes only around the ones that matter.

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// word reads 8 bytes of s from i on, little-endian: one load.
func word[T string | []byte](s T, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// special reports whether any of the 8 bytes in w is '"', '\\' or a control
// byte below 0x20, or, with high, a byte at or above 0x80. Each test is the
// classic zero-byte test, exact about whether some byte matches.
func special(w uint64, high bool) bool {
	q := w ^ (ones * '"')
	b := w ^ (ones * '\\')
	m := (q - ones) &^ q
	m |= (b - ones) &^ b
	m |= (w - ones*0x20) &^ w
	if high {
		m |= w
	}
	return m&highs != 0
}

// plainLen returns the length of the longest prefix of s that holds no '"',
// '\\' or control byte, nor, with high, a byte at or above 0x80: what a JSON
// string holds as it is.
func plainLen[T string | []byte](s T, high bool) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if special(word(s, i), high) {
			break
		}
	}
	for ; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' || c < 0x20 || (high && c >= utf8.RuneSelf) {
			break
		}
	}
	return i
}

// RuneCount is utf8.RuneCountInString, eight ASCII bytes at a time.
func RuneCount(s string) int {
	n, i := 0, 0
	for ; i+8 <= len(s); i += 8 {
		if word(s, i)&highs != 0 {
			break
		}
		n += 8
	}
	return n + utf8.RuneCountInString(s[i:])
}
