package wire

import (
	"errors"
	"fmt"
)

// Key is one of the protocol's keys.
type Key int

// The keys whose values Scan records.
const (
	KeyType Key = iota
	KeyID
	KeyPoliID // "privPoliId", the homework's spelling in data messages
	KeyPolyID // "privPolyId", its spelling in setup messages
	KeyListenPort
	KeyHold
	KeyMux
	KeySrcID
	KeyDestID
	KeyPayloadSize
	KeyPayload
	KeyCode
	KeySeq
	KeyToken
	KeyIdempotent
	KeyHeartbeat
	KeyTimeout
	KeyWeight
	KeyReqID
	KeyHTTPPort
	NumKeys
)

// Fields holds the raw JSON text of each known key's value in one object,
// exactly as encoding/json's RawMessage would; nil where the key is absent.
// The slices point into the scanned data.
type Fields [NumKeys][]byte

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// ErrNotObject reports valid JSON that is not an object.
var ErrNotObject = errors.New("not a JSON object")

// Scan checks that data is one JSON object, accepting and refusing what
// encoding/json accepts and refuses, and records the raw values of the known
// keys. As with encoding/json, keys are compared after unescaping, and when a
// key repeats the last value wins.
func Scan(data []byte, f *Fields) error {
	*f = Fields{}
	s := scanner{data: data}
	s.space()
	if s.i >= len(data) {
		return s.syntax("looking for beginning of value")
	}
	if data[s.i] != '{' {
		if err := s.value(); err != nil {
			return err
		}
		if s.space(); s.i != len(data) {
			return s.syntax("after top-level value")
		}
		return ErrNotObject
	}
	if err := s.object(f); err != nil {
		return err
	}
	s.space()
	if s.i != len(data) {
		return s.syntax("after top-level value")
	}
	return nil
}

// ScanPrefix records the known keys among the complete key-value pairs at
// the top level of data, the first bytes of an object cut short, such as a
// [TooLargeError]'s prefix. It reports nothing about validity.
func ScanPrefix(data []byte, f *Fields) {
	*f = Fields{}
	s := scanner{data: data}
	s.space()
	if s.i < len(data) && data[s.i] == '{' {
		s.object(f) // fails where data is cut; what came before is recorded
	}
}

type scanner struct {
	data  []byte
	i     int
	depth int
}

func (s *scanner) syntax(context string) error {
	if s.i >= len(s.data) {
		return errors.New("unexpected end of JSON input")
	}
	return fmt.Errorf("invalid character %q %s", s.data[s.i], context)
}

func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value() error {
	if s.i >= len(s.data) {
		return s.syntax("looking for beginning of value")
	}
	switch c := s.data[s.i]; {
	case c == '{':
		return s.object(nil)
	case c == '[':
		return s.array()
	case c == '"':
		_, err := s.str()
		return err
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.syntax("looking for beginning of value")
}

func (s *scanner) push() error {
	s.depth++
	if s.depth > maxDepth {
		return errors.New("exceeded max depth")
	}
	return nil
}

// object scans an object at s.i; with f set, it records the known keys.
func (s *scanner) object(f *Fields) error {
	if err := s.push(); err != nil {
		return err
	}
	s.i++ // '{'
	s.space()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return s.syntax("looking for beginning of object key string")
		}
		start := s.i
		escaped, err := s.str()
		if err != nil {
			return err
		}
		key := s.data[start:s.i]
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return s.syntax("after object key")
		}
		s.i++
		s.space()
		vstart := s.i
		if err := s.value(); err != nil {
			return err
		}
		if f != nil && s.i < len(s.data) { // a number at the very end may be cut short
			if k, ok := lookupKey(key, escaped); ok {
				f[k] = s.data[vstart:s.i]
			}
		}
		s.space()
		if s.i >= len(s.data) {
			return s.syntax("after object key:value pair")
		}
		switch s.data[s.i] {
		case ',':
			s.i++
			s.space()
		case '}':
			s.i++
			s.depth--
			return nil
		default:
			return s.syntax("after object key:value pair")
		}
	}
}

func (s *scanner) array() error {
	if err := s.push(); err != nil {
		return err
	}
	s.i++ // '['
	s.space()
	if s.i < len(s.data) && s.data[s.i] == ']' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if err := s.value(); err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.data) {
			return s.syntax("after array element")
		}
		switch s.data[s.i] {
		case ',':
			s.i++
			s.space()
		case ']':
			s.i++
			s.depth--
			return nil
		default:
			return s.syntax("after array element")
		}
	}
}

// str scans a string at s.i and reports whether it holds an escape.
func (s *scanner) str() (escaped bool, err error) {
	s.i++ // '"'
	for s.i < len(s.data) {
		s.i += plainLen(s.data[s.i:], false)
		if s.i >= len(s.data) {
			break
		}
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, nil
		case c < 0x20:
			return false, s.syntax("in string literal")
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(s.data) {
				return false, s.syntax("in string escape code")
			}
			switch s.data[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for range 4 {
					if s.i >= len(s.data) || !isHex(s.data[s.i]) {
						return false, s.syntax("in \\u hexadecimal character escape")
					}
					s.i++
				}
			default:
				return false, s.syntax("in string escape code")
			}
		default:
			s.i++
		}
	}
	return false, s.syntax("in string literal")
}

func (s *scanner) number() error {
	if s.data[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.data) && s.data[s.i] == '0':
		s.i++
	case s.i < len(s.data) && s.data[s.i] >= '1' && s.data[s.i] <= '9':
		s.digits()
	default:
		return s.syntax("in numeric literal")
	}
	if s.i < len(s.data) && s.data[s.i] == '.' {
		s.i++
		if !s.digits() {
			return s.syntax("after decimal point in numeric literal")
		}
	}
	if s.i < len(s.data) && (s.data[s.i] == 'e' || s.data[s.i] == 'E') {
		s.i++
		if s.i < len(s.data) && (s.data[s.i] == '+' || s.data[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return s.syntax("in exponent of numeric literal")
		}
	}
	return nil
}

// digits consumes a run of digits and reports whether there was one.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

func (s *scanner) literal(word string) error {
	for j := 0; j < len(word); j++ {
		if s.i >= len(s.data) || s.data[s.i] != word[j] {
			return s.syntax("in literal " + word)
		}
		s.i++
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// lookupKey maps a quoted key to a known key.
func lookupKey(quoted []byte, escaped bool) (Key, bool) {
	name := quoted[1 : len(quoted)-1]
	if escaped {
		name = AppendUnquote(nil, quoted)
	}
	switch string(name) {
	case "type":
		return KeyType, true
	case "id":
		return KeyID, true
	case "privPoliId":
		return KeyPoliID, true
	case "privPolyId":
		return KeyPolyID, true
	case "listenport":
		return KeyListenPort, true
	case "hold":
		return KeyHold, true
	case "mux":
		return KeyMux, true
	case "srcid":
		return KeySrcID, true
	case "destid":
		return KeyDestID, true
	case "payloadsize":
		return KeyPayloadSize, true
	case "payload":
		return KeyPayload, true
	case "code":
		return KeyCode, true
	case "seq":
		return KeySeq, true
	case "token":
		return KeyToken, true
	case "idempotent":
		return KeyIdempotent, true
	case "heartbeat":
		return KeyHeartbeat, true
	case "timeout":
		return KeyTimeout, true
	case "weight":
		return KeyWeight, true
	case "reqid":
		return KeyReqID, true
	case "httpport":
		return KeyHTTPPort, true
	}
	return 0, false
}
