package httpproxy

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// maxCredentials bounds a decoded user:password, so that decoding needs
// no allocation; maxEncodedCredentials is its length in base64.
const (
	maxCredentials        = 1 << 10
	maxEncodedCredentials = (maxCredentials + 2) / 3 * 4
)

// digest is a password's SHA-256, what passwords are compared as.
type digest = [sha256.Size]byte

// digests maps users to their passwords' digests.
func digests(users map[string]string) map[string]digest {
	if len(users) == 0 {
		return nil
	}
	m := make(map[string]digest, len(users))
	for user, password := range users {
		m[user] = sha256.Sum256([]byte(password))
	}
	return m
}

// challenge is the Proxy-Authenticate value for realm, quoted as RFC 9110
// says.
func challenge(realm string) string {
	if realm == "" {
		realm = defaultRealm
	}
	return `Basic realm="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(realm) + `"`
}

// authorized reports whether header, a Proxy-Authorization value, holds
// the Basic credentials (RFC 7617) of one of g's users.
func (g *gate) authorized(header string) bool {
	scheme, encoded, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return false
	}
	encoded = strings.TrimLeft(encoded, " ")
	var src [maxEncodedCredentials]byte
	var dst [maxCredentials]byte
	if len(encoded) > len(src) {
		return false
	}
	n, err := base64.StdEncoding.Decode(dst[:], src[:copy(src[:], encoded)])
	if err != nil {
		return false
	}
	user, password, ok := bytes.Cut(dst[:n], []byte(":"))
	if !ok {
		return false
	}
	want, known := g.users[string(user)]
	got := sha256.Sum256(password)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1 && known
}
