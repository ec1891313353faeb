package httpproxy

import "sync"

// copyBufferSize is the size of the buffers that move bodies and tunnel
// bytes: io.Copy's own size, but pooled rather than allocated per copy.
const copyBufferSize = 32 << 10

// bufferPool lends copy buffers. It implements httputil.BufferPool, and
// pools array pointers so that neither Get nor Put allocates.
type bufferPool struct{ pool sync.Pool }

// copyBuffers is shared by every Proxy: a buffer is a buffer.
var copyBuffers = &bufferPool{pool: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}

// Get returns a buffer of copyBufferSize bytes.
func (b *bufferPool) Get() []byte { return b.pool.Get().(*[copyBufferSize]byte)[:] }

// Put returns a buffer that Get lent.
func (b *bufferPool) Put(buf []byte) {
	if cap(buf) >= copyBufferSize {
		b.pool.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
	}
}
