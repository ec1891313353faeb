package httpproxy

import (
	"log/slog"
	"strings"
	"testing"
)

// TestDenyList matches hosts against DenyHosts entries of each kind, and
// ignores, with an error logged, entries that are none.
func TestDenyList(t *testing.T) {
	log, logged := debugLogger()
	d := parseDenyHosts([]string{
		"Exact.Test", ".example.test", "10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "::ffff:198.51.100.7",
		" spaced.test ", "", "*.wild.test", "host.test:80", "10.0.0.0/33",
	}, log)
	for host, want := range map[string]bool{
		"exact.test":       true,
		"EXACT.test.":      true,
		"sub.exact.test":   false, // a name, not a domain
		"example.test":     true,
		"a.b.example.test": true,
		"badexample.test":  false,
		"example.test.org": false,
		"10.1.2.3":         true,
		"11.0.0.1":         false,
		"192.0.2.1":        true,
		"192.0.2.2":        false,
		"::ffff:10.0.0.1":  true, // v4-mapped, as v4
		"2001:db8::1":      true,
		"2001:db8::1%eth0": true,
		"2001:db9::1":      false,
		"198.51.100.7":     true,
		"spaced.test":      true,
		"x.wild.test":      false, // "*.wild.test" is not an entry's form
		"host.test":        false,
	} {
		if got := d.deniesHost(host); got != want {
			t.Errorf("deniesHost(%q) = %v, want %v", host, got, want)
		}
	}
	out := logged.String()
	for _, bad := range []string{"*.wild.test", "host.test:80", "10.0.0.0/33"} {
		if !strings.Contains(out, bad) || !strings.Contains(out, "level=ERROR") {
			t.Errorf("the bad entry %q was not logged as an error:\n%s", bad, out)
		}
	}

	check := d.control()
	if err := check(t.Context(), "tcp4", "10.9.9.9:443", nil); err != errDeniedAddress {
		t.Errorf("dialing a denied address: %v, want errDeniedAddress", err)
	}
	if err := check(t.Context(), "tcp4", "127.0.0.1:443", nil); err != nil {
		t.Errorf("dialing an allowed address: %v", err)
	}
	marked := d.controlMarked()
	if err := marked(t.Context(), "tcp4", "10.9.9.9:443", nil); err != nil {
		t.Errorf("a reverse request's dial was checked: %v", err)
	}
	if err := marked(d.checkDestination(t.Context()), "tcp4", "10.9.9.9:443", nil); err != errDeniedAddress {
		t.Errorf("a forward request's dial to a denied address: %v, want errDeniedAddress", err)
	}

	none := parseDenyHosts([]string{"name.test"}, slog.New(slog.DiscardHandler))
	if none.control() != nil || none.controlMarked() != nil || none.checkDestination(t.Context()) != t.Context() {
		t.Error("with no address denied, dials are still checked")
	}
}
