package httpproxy

import "net/http"

// Cache is a shared HTTP cache for GET and HEAD. (To be written.)
type Cache struct{}

// wrap returns a RoundTripper that answers from the cache what it may and
// asks next for the rest.
func (c *Cache) wrap(next http.RoundTripper) http.RoundTripper { return next }

// usage returns the responses held and their bytes.
func (c *Cache) usage() (entries int, bytes int64) { return 0, 0 }
