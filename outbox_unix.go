//go:build unix

package revproxy

import "syscall"

// tryOnFD writes o.tryBuf to the non-blocking socket fd until it would block.
func (o *outbox) tryOnFD(fd uintptr) bool {
	for o.tryN < len(o.tryBuf) {
		n, err := syscall.Write(int(fd), o.tryBuf[o.tryN:])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return true
		}
		if err != nil {
			o.tryErr = err
			return true
		}
		o.tryN += n
	}
	return true
}
