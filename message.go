package revproxy

import (
	"fmt"
	"strconv"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// defaultMaxMessage bounds a message by default: what a reader buffers for
// one, and what a writer sends.
const defaultMaxMessage = 1 << 20

// Type says what a [Message] is. The numbers are the homework's.
type Type int

// The message types. Data, Setup and Reply are the homework's; Error is
// revproxy's, sent where the homework would leave a client waiting.
const (
	TypeData  Type = 0 // client → proxy → server: a payload for a policy
	TypeSetup Type = 1 // server → proxy: register id, policy and listen port
	TypeReply Type = 2 // server → proxy → client: the handler's answer
	TypeError Type = 3 // proxy or server → client: why there is no reply
	TypePing  Type = 4 // server ⇄ proxy, on a held registration: a heartbeat
	TypeDrain Type = 5 // server → proxy: send nothing new; proxy → server: nothing more comes
)

// String names the type, as "data", "setup", "reply" or "error".
func (t Type) String() string {
	switch t {
	case TypeData:
		return "data"
	case TypeSetup:
		return "setup"
	case TypeReply:
		return "reply"
	case TypeError:
		return "error"
	case TypePing:
		return "ping"
	case TypeDrain:
		return "drain"
	}
	return "type " + strconv.Itoa(int(t))
}

// Message is one protocol message. Which fields are used depends on Type;
// the JSON keys are given beside each field. Decoding is lenient (see
// [Message.UnmarshalJSON]); encoding writes the homework's keys.
type Message struct {
	Type Type // "type"

	// ID is the server's id in a setup message ("id").
	ID string
	// Policy is the privacy policy, the service name that routes a message:
	// "privPoliId" in data messages and "privPolyId" in setup messages, as
	// the homework spells them. Either spelling is read in either message.
	Policy string
	// ListenPort is the port the server listens on, in a setup message
	// ("listenport").
	ListenPort int
	// Hold, in a setup message, says that the server keeps this connection
	// open while it serves, so that its closing means the server is gone
	// ("hold", a revproxy extension that other proxies ignore).
	Hold bool
	// Mux, in a setup message, asks the proxy to send the server its
	// messages over this connection, tagged with Seq, instead of connecting
	// to its listen port for each ("mux", a revproxy extension).
	Mux bool

	SrcID  string // "srcid": the sender's id (client in data, server in replies)
	DestID string // "destid": the client a reply or error is for

	// PayloadSize is the payload's length in characters (Unicode code
	// points, as Python's len counts them) ("payloadsize"). It is carried,
	// not checked.
	PayloadSize int
	Payload     string // "payload"

	// Code is a machine-readable reason in an error message ("code", a
	// revproxy extension); see [RemoteError].
	Code string
	// Idempotent, in a setup message, says that the server's handler may
	// safely see a message twice, so the proxy may send a message lost with
	// the server to another ("idempotent", a revproxy extension).
	Idempotent bool
	// Heartbeat, in a setup message, is the interval in milliseconds at
	// which the server pings the proxy over this connection; the proxy
	// answers each ping, and either side that hears nothing for three
	// intervals takes the other for gone ("heartbeat", a revproxy
	// extension).
	Heartbeat int
	// Token, in a setup message, is the registration secret a proxy may
	// require ("token", a revproxy extension).
	Token string
	// Timeout, in a data message, is how many milliseconds the client will
	// wait for the answer; the proxy answers with an error when they pass,
	// and the server's handler gets that deadline ("timeout", a revproxy
	// extension; zero means none).
	Timeout int
	// Weight, in a setup message, is the server's share of its policy's
	// messages against the others' (from 1 to 1000; zero means 1)
	// ("weight", a revproxy extension); see [Balancer].
	Weight int
	// RequestID names a data message, and the answer to it, in the logs
	// of the proxy and the server, so that one message can be traced end
	// to end ("reqid", a revproxy extension). A proxy with an access log
	// gives one to a message that comes without.
	RequestID string
	// HTTPPort, in a setup message, is the port of an HTTP service the
	// server also runs, on the host it registers from: an HTTP front door
	// (package httpproxy) sends the policy's HTTP requests there
	// ("httpport", a revproxy extension; zero means none).
	HTTPPort int
	// Seq, when not zero, tags a data message so that its answer, tagged
	// the same, may come back out of order ("seq", a revproxy extension).
	Seq uint64
}

// PayloadLen returns the PayloadSize the homework's peers compute for s:
// its length in Unicode code points.
func PayloadLen(s string) int { return wire.RuneCount(s) }

// MarshalJSON encodes m as compact JSON, writing numbers as JSON numbers.
func (m Message) MarshalJSON() ([]byte, error) {
	return appendMessage(nil, &m, false), nil
}

// UnmarshalJSON decodes one message leniently: "type", ids, sizes and ports
// may be JSON numbers or numeric strings; ids and the payload may be any
// scalar; the policy may be spelled "privPoliId" or "privPolyId"; unknown
// keys are ignored. Only a missing or non-numeric type, or a number field that
// is not an integer, is an error.
func (m *Message) UnmarshalJSON(data []byte) error {
	_, err := decodeMessage(data, m)
	return err
}

// decodeMessage decodes data into m and reports whether the sender wrote the
// type as a string, so that a reply can be written the way the peer writes.
// On an error m holds the seq, when it could be read.
func decodeMessage(data []byte, m *Message) (quoted bool, err error) {
	var fr frame
	if err := fr.decode(data); err != nil {
		*m = Message{Seq: fr.seq}
		return false, err
	}
	return fr.quoted, m.fromFrame(&fr)
}

// fromFrame decodes the fields of a frame that the frame leaves raw.
func (m *Message) fromFrame(fr *frame) (err error) {
	f := &fr.f
	*m = Message{Type: fr.typ, Seq: fr.seq, PayloadSize: fr.size, Timeout: fr.timeout}
	m.Policy = decodeText(policyField(f, m.Type))
	m.ID = decodeText(f[wire.KeyID])
	m.SrcID = decodeText(f[wire.KeySrcID])
	m.DestID = decodeText(f[wire.KeyDestID])
	m.Payload = decodeText(f[wire.KeyPayload])
	m.Code = decodeText(f[wire.KeyCode])
	m.Hold = decodeBool(f[wire.KeyHold])
	m.Mux = decodeBool(f[wire.KeyMux])
	m.Token = decodeText(f[wire.KeyToken])
	m.Idempotent = decodeBool(f[wire.KeyIdempotent])
	if m.ListenPort, _, err = decodeInt("listenport", f[wire.KeyListenPort]); err != nil {
		return err
	}
	m.RequestID = decodeText(f[wire.KeyReqID])
	if m.Weight, _, err = decodeInt("weight", f[wire.KeyWeight]); err != nil {
		return err
	}
	if m.HTTPPort, _, err = decodeInt("httpport", f[wire.KeyHTTPPort]); err != nil {
		return err
	}
	m.Heartbeat, _, err = decodeInt("heartbeat", f[wire.KeyHeartbeat])
	return err
}

// policyField returns the raw policy: a data message's "privPoliId", or a
// setup message's "privPolyId", else the other spelling.
func policyField(f *wire.Fields, t Type) []byte {
	first, second := f[wire.KeyPoliID], f[wire.KeyPolyID]
	if t == TypeSetup {
		first, second = second, first
	}
	if first != nil {
		return first
	}
	return second
}

// decodeInt reads an integer written as a JSON number or a numeric string.
// An absent or null field is zero.
func decodeInt(key string, raw []byte) (n int, quoted bool, err error) {
	if raw == nil || string(raw) == "null" {
		return 0, false, nil
	}
	text := raw
	if raw[0] == '"' {
		if text = raw[1 : len(raw)-1]; !wire.Plain(text) {
			text = wire.AppendUnquote(nil, raw)
		}
		quoted = true
	}
	v, ok := wire.ParseInt(text)
	if !ok {
		return 0, false, fmt.Errorf("%w: %q is %s, not an integer", ErrBadMessage, key, raw)
	}
	return int(v), quoted, nil
}

// decodeSeq reads the correlation tag: a non-negative integer, or absent.
func decodeSeq(raw []byte) (uint64, error) {
	if raw == nil {
		return 0, nil
	}
	n, _, err := decodeInt("seq", raw)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: bad seq %s", ErrBadMessage, raw)
	}
	return uint64(n), nil
}

// decodeText reads a text field: a string's value, or any other value's
// JSON text as sent (peers put numbers, and sometimes other values, in ids).
// An absent or null field is empty.
func decodeText(raw []byte) string {
	if raw == nil || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		return wire.Unquote(raw)
	}
	return string(raw)
}

// decodeBool reads an extension flag: true, a non-zero number or "true".
func decodeBool(raw []byte) bool {
	switch string(raw) {
	case "", "null", "false", "0", `"false"`, `"0"`, `""`:
		return false
	}
	return true
}

// appendMessage appends m as compact JSON. With quoted set, the type, ids,
// sizes and ports are written as strings, for peers that compare them as
// strings; otherwise numeric ids are written as numbers, as in the homework.
func appendMessage(dst []byte, m *Message, quoted bool) []byte {
	dst = appendHead(dst, m.Type, m.Seq, quoted)
	switch m.Type {
	case TypePing, TypeDrain:
	case TypeSetup:
		dst = appendKey(dst, "id")
		dst = appendID(dst, m.ID, quoted)
		dst = appendKey(dst, "privPolyId")
		dst = wire.AppendString(dst, m.Policy)
		dst = appendKey(dst, "privPoliId")
		dst = wire.AppendString(dst, m.Policy)
		dst = appendKey(dst, "listenport")
		dst = appendInt(dst, m.ListenPort, quoted)
		if m.Hold {
			dst = append(dst, `,"hold":true`...)
		}
		if m.Mux {
			dst = append(dst, `,"mux":true`...)
		}
		if m.Idempotent {
			dst = append(dst, `,"idempotent":true`...)
		}
		if m.Heartbeat != 0 {
			dst = appendKey(dst, "heartbeat")
			dst = strconv.AppendInt(dst, int64(m.Heartbeat), 10)
		}
		if m.Token != "" {
			dst = appendKey(dst, "token")
			dst = wire.AppendString(dst, m.Token)
		}
		if m.Weight != 0 {
			dst = appendKey(dst, "weight")
			dst = strconv.AppendInt(dst, int64(m.Weight), 10)
		}
		if m.HTTPPort != 0 {
			dst = appendKey(dst, "httpport")
			dst = strconv.AppendInt(dst, int64(m.HTTPPort), 10)
		}
	case TypeData:
		dst = appendKey(dst, "srcid")
		dst = appendID(dst, m.SrcID, quoted)
		dst = appendKey(dst, "privPoliId")
		dst = wire.AppendString(dst, m.Policy)
		dst = appendPayload(dst, m, quoted)
		dst = appendTimeout(dst, m.Timeout)
		dst = appendReqID(dst, m.RequestID)
	default:
		dst = appendKey(dst, "srcid")
		dst = appendID(dst, m.SrcID, quoted)
		dst = appendKey(dst, "destid")
		dst = appendID(dst, m.DestID, quoted)
		dst = appendPayload(dst, m, quoted)
		if m.Code != "" {
			dst = appendKey(dst, "code")
			dst = wire.AppendString(dst, m.Code)
		}
		dst = appendReqID(dst, m.RequestID)
	}
	return append(dst, '}')
}

// appendTimeout adds a data message's timeout, when it has one.
func appendTimeout(dst []byte, ms int) []byte {
	if ms > 0 {
		dst = append(dst, `,"timeout":`...)
		dst = strconv.AppendInt(dst, int64(ms), 10)
	}
	return dst
}

// appendReqID adds a message's request id, when it has one.
func appendReqID(dst []byte, id string) []byte {
	if id != "" {
		dst = appendKey(dst, "reqid")
		dst = wire.AppendString(dst, id)
	}
	return dst
}

// appendHead begins a message: its type, then its seq when there is one.
// The seq comes early so that a peer that cannot take a message for its size
// can still find out, from its first bytes, which message to refuse.
func appendHead(dst []byte, t Type, seq uint64, quoted bool) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendInt(dst, int(t), quoted)
	if seq != 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, seq, 10)
	}
	return dst
}

func appendPayload(dst []byte, m *Message, quoted bool) []byte {
	dst = appendKey(dst, "payloadsize")
	dst = appendInt(dst, m.PayloadSize, quoted)
	dst = appendKey(dst, "payload")
	return wire.AppendString(dst, m.Payload)
}

func appendKey(dst []byte, key string) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}

func appendInt(dst []byte, n int, quoted bool) []byte {
	if quoted {
		dst = append(dst, '"')
		dst = strconv.AppendInt(dst, int64(n), 10)
		return append(dst, '"')
	}
	return strconv.AppendInt(dst, int64(n), 10)
}

// appendID writes an id as a JSON number when it is a plain integer that any
// peer reads back exactly, and as a string otherwise.
func appendID(dst []byte, id string, quoted bool) []byte {
	if !quoted && isPlainInt(id) {
		return append(dst, id...)
	}
	return wire.AppendString(dst, id)
}

// isPlainInt reports whether s is an integer in canonical form with at most
// 15 digits, so that it survives a round trip through a float64.
func isPlainInt[T string | []byte](s T) bool {
	digits := s
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 15 || (digits[0] == '0' && len(digits) > 1) {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return string(s) != "-0"
}
