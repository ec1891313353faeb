//go:build !unix

package revproxy

// tryOnFD takes nothing where non-blocking writes are not implemented:
// every batch goes to the finishing goroutine.
func (o *outbox) tryOnFD(fd uintptr) bool { return true }
