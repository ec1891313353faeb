package revproxy

import (
	"fmt"
	"unicode/utf8"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// frame is a message as the proxy forwards it: the fields it routes on are
// decoded, and the others stay raw JSON that is copied through, so that the
// per-message path neither unescapes nor allocates. The raw values point
// into the reader's buffer and are valid until its next read.
type frame struct {
	raw     []byte // the whole message
	f       wire.Fields
	typ     Type
	quoted  bool // the sender wrote the type as a string
	seq     uint64
	size    int // payloadsize
	timeout int // milliseconds the client waits, or 0
}

// decode scans data into fr: the one place a message's type, seq, size and
// timeout are parsed, for the proxy's frames and for Message alike. Errors
// wrap ErrBadMessage. The seq comes first: an answer that fails to decode
// past it still reaches the Send it answers.
func (fr *frame) decode(data []byte) error {
	fr.raw, fr.typ, fr.quoted, fr.seq, fr.size, fr.timeout = data, 0, false, 0, 0, 0
	if err := wire.Scan(data, &fr.f); err != nil {
		return fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	var err error
	if fr.seq, err = decodeSeq(fr.f[wire.KeySeq]); err != nil {
		return err
	}
	raw := fr.f[wire.KeyType]
	if raw == nil {
		return fmt.Errorf("%w: no \"type\"", ErrBadMessage)
	}
	t, quoted, err := decodeInt("type", raw)
	if err != nil {
		return err
	}
	fr.typ, fr.quoted = Type(t), quoted
	if fr.size, _, err = decodeInt("payloadsize", fr.f[wire.KeyPayloadSize]); err != nil {
		return err
	}
	fr.timeout, _, err = decodeInt("timeout", fr.f[wire.KeyTimeout])
	return err
}

// message decodes the whole frame, for the paths that need a Message.
func (fr *frame) message() (*Message, error) {
	m := new(Message)
	err := m.fromFrame(fr)
	return m, err
}

// policy returns the policy of a data message as bytes to look up; plain
// strings are not copied.
func (fr *frame) policy() []byte {
	raw := policyField(&fr.f, TypeData)
	if len(raw) > 1 && raw[0] == '"' && wire.Plain(raw[1:len(raw)-1]) {
		return raw[1 : len(raw)-1]
	}
	return []byte(decodeText(raw))
}

// appendData appends fr, a data message, tagged with seq (0 for none).
func appendData(dst []byte, fr *frame, seq uint64, quoted bool) []byte {
	dst = appendHead(dst, TypeData, seq, quoted)
	dst = appendKey(dst, "srcid")
	dst = appendRawID(dst, fr.f[wire.KeySrcID], quoted)
	dst = appendKey(dst, "privPoliId")
	dst = appendRawText(dst, policyField(&fr.f, TypeData))
	dst = appendKey(dst, "payloadsize")
	dst = appendInt(dst, fr.size, quoted)
	dst = appendKey(dst, "payload")
	dst = appendRawText(dst, fr.f[wire.KeyPayload])
	dst = appendTimeout(dst, fr.timeout)
	if id := fr.f[wire.KeyReqID]; id != nil {
		dst = appendKey(dst, "reqid")
		dst = appendRawText(dst, id)
	}
	return append(dst, '}')
}

// appendAnswer appends fr, a reply or error message, tagged with seq.
func appendAnswer(dst []byte, fr *frame, seq uint64, quoted bool) []byte {
	dst = appendHead(dst, fr.typ, seq, quoted)
	dst = appendKey(dst, "srcid")
	dst = appendRawID(dst, fr.f[wire.KeySrcID], quoted)
	dst = appendKey(dst, "destid")
	dst = appendRawID(dst, fr.f[wire.KeyDestID], quoted)
	dst = appendKey(dst, "payloadsize")
	dst = appendInt(dst, fr.size, quoted)
	dst = appendKey(dst, "payload")
	dst = appendRawText(dst, fr.f[wire.KeyPayload])
	if code := fr.f[wire.KeyCode]; code != nil && decodeText(code) != "" {
		dst = appendKey(dst, "code")
		dst = appendRawText(dst, code)
	}
	if id := fr.f[wire.KeyReqID]; id != nil {
		dst = appendKey(dst, "reqid")
		dst = appendRawText(dst, id)
	}
	return append(dst, '}')
}

// appendRawText appends a raw text value as a JSON string that decodes to
// what decodeText gives for raw: a clean string is copied as it came.
func appendRawText(dst, raw []byte) []byte {
	if len(raw) > 0 && raw[0] == '"' && utf8.Valid(raw) {
		return append(dst, raw...)
	}
	return wire.AppendString(dst, decodeText(raw))
}

// appendRawID appends a raw id as appendID would append its decoded text.
func appendRawID(dst, raw []byte, quoted bool) []byte {
	if len(raw) == 0 {
		return append(dst, `""`...)
	}
	switch c := raw[0]; {
	case c == '"' && wire.Plain(raw[1:len(raw)-1]):
		if inner := raw[1 : len(raw)-1]; !quoted && isPlainInt(inner) {
			return append(dst, inner...)
		}
		return append(dst, raw...)
	case c == '-' || c >= '0' && c <= '9' || c == 't' || c == 'f':
		// A number, true or false: nothing in it needs escaping.
		if !quoted && isPlainInt(raw) {
			return append(dst, raw...)
		}
		dst = append(dst, '"')
		dst = append(dst, raw...)
		return append(dst, '"')
	}
	return appendID(dst, decodeText(raw), quoted)
}
