package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendStringRoundTrips(t *testing.T) {
	for _, s := range []string{
		"", "hello", `quote " and \ backslash`, "line\nbreak\r\ttab",
		"\x00\x01\x1f control", "héllo wörld ✓ 🙂", "\u2028\u2029", "<&>",
	} {
		checkRoundTrip(t, s)
	}
}

func TestAppendStringReplacesInvalidUTF8(t *testing.T) {
	var got string
	if err := json.Unmarshal(AppendString(nil, "a\xffb"), &got); err != nil {
		t.Fatal(err)
	}
	if got != "a\uFFFDb" {
		t.Errorf("got %q, want %q", got, "a\uFFFDb")
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("hello")
	f.Add("\"\\\n\u2028")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			s = strings.ToValidUTF8(s, "\uFFFD")
		}
		checkRoundTrip(t, s)
	})
}

func checkRoundTrip(t *testing.T, s string) {
	t.Helper()
	enc := AppendString(nil, s)
	var got string
	if err := json.Unmarshal(enc, &got); err != nil {
		t.Fatalf("%q encoded as %s: %v", s, enc, err)
	}
	if got != s {
		t.Errorf("%q encoded as %s decodes to %q", s, enc, got)
	}
}
