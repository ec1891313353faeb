package wire

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// plainLenRef is plainLen one byte at a time.
func plainLenRef(s []byte, high bool) int {
	for i, c := range s {
		if c == '"' || c == '\\' || c < 0x20 || (high && c >= 0x80) {
			return i
		}
	}
	return len(s)
}

// TestPlainLenEveryByte puts each byte value at each place of a run of
// plain bytes, across the 8-byte words, and compares plainLen with the
// byte-at-a-time answer, for []byte and string alike.
func TestPlainLenEveryByte(t *testing.T) {
	for _, high := range []bool{false, true} {
		for n := range 20 {
			for pos := range n {
				for b := range 256 {
					s := make([]byte, n)
					for i := range s {
						s[i] = 'a'
					}
					s[pos] = byte(b)
					want := plainLenRef(s, high)
					if got := plainLen(s, high); got != want {
						t.Fatalf("plainLen(%q, %v) = %d, want %d", s, high, got, want)
					}
					if got := plainLen(string(s), high); got != want {
						t.Fatalf("plainLen(string %q, %v) = %d, want %d", s, high, got, want)
					}
				}
			}
		}
	}
}

// TestPlainLenRandom compares plainLen and RuneCount with their
// byte-at-a-time counterparts on random strings of bytes that matter
// (borrows between bytes are where word-at-a-time tests go wrong).
func TestPlainLenRandom(t *testing.T) {
	alphabet := []byte{0, 1, 0x1f, 0x20, 0x21, '"', '#', '\\', ']', 'a', 0x7f, 0x80, 0x81, 0xbf, 0xc3, 0xe2, 0xfe, 0xff}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		s := make([]byte, r.IntN(40))
		for i := range s {
			if r.IntN(4) == 0 {
				s[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				s[i] = 'a' + byte(r.IntN(26))
			}
		}
		for _, high := range []bool{false, true} {
			if got, want := plainLen(s, high), plainLenRef(s, high); got != want {
				t.Fatalf("plainLen(%q, %v) = %d, want %d", s, high, got, want)
			}
		}
		if got, want := RuneCount(string(s)), utf8.RuneCountInString(string(s)); got != want {
			t.Fatalf("RuneCount(%q) = %d, want %d", s, got, want)
		}
	}
}

// BenchmarkPlain4K is the cost, per message with a 4 KiB payload, of each
// loop that passes over string bytes eight at a time: splitting the stream
// (Reader.scan), scanning the fields (Scan), writing the payload
// (AppendString) and counting its characters (RuneCount).
func BenchmarkPlain4K(b *testing.B) {
	payload := make([]byte, 4096)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	msg := []byte(`{"type":0,"seq":1,"srcid":"c","privPoliId":"PP_1","payload":"` + string(payload) + `"}`)
	b.Run("Scan", func(b *testing.B) {
		var f Fields
		for b.Loop() {
			Scan(msg, &f)
		}
	})
	b.Run("AppendString", func(b *testing.B) {
		dst := make([]byte, 0, 8192)
		s := string(payload)
		for b.Loop() {
			AppendString(dst[:0], s)
		}
	})
	b.Run("ReaderScan", func(b *testing.B) {
		r := &Reader{buf: msg, w: len(msg)}
		for b.Loop() {
			r.n, r.depth, r.inString, r.escaped = 0, 0, false, false
			r.scan()
		}
	})
	b.Run("RuneCount", func(b *testing.B) {
		s := string(payload)
		for b.Loop() {
			RuneCount(s)
		}
	})
}
