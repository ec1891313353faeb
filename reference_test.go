package revproxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The reference decoder: the first, encoding/json-based implementation of
// decodeMessage. The hand-written decoder must accept, refuse and decode
// exactly as this does (see FuzzDecodeMatchesReference).

// decodeMessage decodes data into m and reports whether the sender wrote the
// type as a string, so that a reply can be written the way the peer writes.
func referenceDecode(data []byte, m *Message) (quoted bool, err error) {
	*m = Message{}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return false, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	raw, ok := fields["type"]
	if !ok {
		return false, fmt.Errorf("%w: no \"type\"", ErrBadMessage)
	}
	t, quoted, err := refInt("type", raw)
	if err != nil {
		return false, err
	}
	m.Type = Type(t)

	first, second := "privPoliId", "privPolyId"
	if m.Type == TypeSetup {
		first, second = second, first
	}
	if raw, ok := fields[first]; ok {
		m.Policy = refText(raw)
	} else if raw, ok := fields[second]; ok {
		m.Policy = refText(raw)
	}
	m.ID = refText(fields["id"])
	m.SrcID = refText(fields["srcid"])
	m.DestID = refText(fields["destid"])
	m.Payload = refText(fields["payload"])
	m.Code = refText(fields["code"])
	m.Hold = refBool(fields["hold"])
	m.Mux = refBool(fields["mux"])
	m.Token = refText(fields["token"])
	m.Idempotent = refBool(fields["idempotent"])
	if raw, ok := fields["seq"]; ok {
		seq, _, err := refInt("seq", raw)
		if err != nil || seq < 0 {
			return false, fmt.Errorf("%w: bad seq", ErrBadMessage)
		}
		m.Seq = uint64(seq)
	}
	if m.ListenPort, _, err = refInt("listenport", fields["listenport"]); err != nil {
		return false, err
	}
	if m.PayloadSize, _, err = refInt("payloadsize", fields["payloadsize"]); err != nil {
		return false, err
	}
	if m.Heartbeat, _, err = refInt("heartbeat", fields["heartbeat"]); err != nil {
		return false, err
	}
	if m.Timeout, _, err = refInt("timeout", fields["timeout"]); err != nil {
		return false, err
	}
	return quoted, nil
}

// decodeInt reads an integer written as a JSON number or a numeric string.
// An absent or null field is zero.
func refInt(key string, raw json.RawMessage) (n int, quoted bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	text := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, false, fmt.Errorf("%w: %q: %v", ErrBadMessage, key, err)
		}
		quoted = true
	}
	n, err = strconv.Atoi(text)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %q is %s, not an integer", ErrBadMessage, key, raw)
	}
	return n, quoted, nil
}

// decodeText reads a text field: a string's value, or any other value's
// JSON text as sent (peers put numbers, and sometimes other values, in ids).
// An absent or null field is empty.
func refText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(bytes.TrimSpace(raw))
}

// decodeBool reads an extension flag: true, a non-zero number or "true".
func refBool(raw json.RawMessage) bool {
	switch string(raw) {
	case "", "null", "false", "0", `"false"`, `"0"`, `""`:
		return false
	}
	return true
}

// FuzzDecodeMatchesReference checks that the hand-written decoder is exactly
// as lenient as the reference: same inputs refused, same messages decoded.
func FuzzDecodeMatchesReference(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got, want Message
		gotQuoted, err := decodeMessage(data, &got)
		wantQuoted, refErr := referenceDecode(data, &want)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("%q: decodeMessage err = %v, reference err = %v", data, err, refErr)
		}
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("%q: err %v does not match ErrBadMessage", data, err)
			}
			return
		}
		if diff := cmp.Diff(want, got); diff != "" || gotQuoted != wantQuoted {
			t.Fatalf("%q: (-reference +decodeMessage):\n%s quoted %v, reference %v", data, diff, gotQuoted, wantQuoted)
		}
	})
}

var decodeSeeds = []string{
	`{"type": 0, "srcid": 50, "privPoliId": "PP_1", "payloadsize": 5, "payload": "hello"}`,
	`{"type": "1", "id": "100", "privPolyId": "PP_1", "listenport": "124", "hold": true, "mux": 1}`,
	`{"type":2,"srcid":"a","destid":null,"payload":"x","seq":"12","extra":[1,{"a":[]}]}`,
	` {"\u0074ype" : "+3" , "code":"\ud83d\ude00 \ud800 \u00e9 \"\\\/\b\f\n\r\t"} `,
	`{"type":0,"payload":"` + "\xff\xfe\xed\xa0\x80 é" + `","srcid":1.5e3,"destid":true}`,
	`{"type":0,"seq":-1}`, `{"type":0,"seq":9223372036854775808}`, `{"type":"1\u0030"}`,
	`{"type":1,"listenport":"x"}`, `{"srcid":1}`, `[0]`, `null`, `{"type":0} x`,
}

// FuzzForwardPreservesMessage checks that what the proxy forwards, written
// from the raw frame it read (appendData, appendAnswer), is the message a
// Server or Client reads from it: the same as encoding the decoded Message
// again (appendMessage), the codec those roles use.
func FuzzForwardPreservesMessage(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, quoted bool) {
		var m Message
		if _, err := decodeMessage(data, &m); err != nil {
			return
		}
		var fr frame
		if err := fr.decode(data); err != nil {
			t.Fatalf("%q: decodes as a Message but not as a frame: %v", data, err)
		}
		const seq = 77
		m.Seq = seq
		var raw []byte
		switch m.Type {
		case TypeData:
			raw = appendData(nil, &fr, seq, quoted)
			m = Message{Type: m.Type, SrcID: m.SrcID, Policy: m.Policy, PayloadSize: m.PayloadSize, Payload: m.Payload, Timeout: max(m.Timeout, 0), Seq: seq}
		case TypeReply, TypeError:
			raw = appendAnswer(nil, &fr, seq, quoted)
		default:
			return
		}
		var got, want Message
		if _, err := decodeMessage(raw, &got); err != nil {
			t.Fatalf("%q forwarded as %s: %v", data, raw, err)
		}
		if _, err := decodeMessage(appendMessage(nil, &m, quoted), &want); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%q forwarded as %s (-message path +frame path):\n%s", data, raw, diff)
		}
		if got.Type == TypeData && string(fr.policy()) != m.Policy {
			t.Fatalf("%q: frame policy %q, message policy %q", data, fr.policy(), m.Policy)
		}
	})
}
