package revproxy

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeVariants(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   Message
		quoted bool
	}{
		{
			name: "homework data, numbers",
			in:   `{"type": 0, "srcid": 50, "privPoliId": "PP_1", "payloadsize": 5, "payload": "hello"}`,
			want: Message{Type: TypeData, SrcID: "50", Policy: "PP_1", PayloadSize: 5, Payload: "hello"},
		},
		{
			name:   "tutorial data, strings",
			in:     `{"type": "0", "srcid": "50", "privPoliId": "PP_1", "payloadsize": "5", "payload": "hello"}`,
			want:   Message{Type: TypeData, SrcID: "50", Policy: "PP_1", PayloadSize: 5, Payload: "hello"},
			quoted: true,
		},
		{
			name: "data with the setup spelling",
			in:   `{"type":0,"srcid":50,"privPolyId":"PP_2","payload":"x"}`,
			want: Message{Type: TypeData, SrcID: "50", Policy: "PP_2", Payload: "x"},
		},
		{
			name: "data with both spellings prefers privPoliId",
			in:   `{"type":0,"privPolyId":"wrong","privPoliId":"PP_1"}`,
			want: Message{Type: TypeData, Policy: "PP_1"},
		},
		{
			name:   "tutorial setup, strings",
			in:     `{"type": "1", "id": "100", "privPolyId": "PP_1", "listenport": "124"}`,
			want:   Message{Type: TypeSetup, ID: "100", Policy: "PP_1", ListenPort: 124},
			quoted: true,
		},
		{
			name: "homework setup with the data spelling",
			in:   `{"type": 1, "id": 100, "privPoliId": "PP_1", "listenport": 124}`,
			want: Message{Type: TypeSetup, ID: "100", Policy: "PP_1", ListenPort: 124},
		},
		{
			name: "setup with both spellings prefers privPolyId",
			in:   `{"type":1,"id":1,"privPoliId":"wrong","privPolyId":"PP_1","listenport":9,"hold":true}`,
			want: Message{Type: TypeSetup, ID: "1", Policy: "PP_1", ListenPort: 9, Hold: true},
		},
		{
			name: "numeric policy",
			in:   `{"type":1,"id":999,"privPolyId":999,"listenport":999}`,
			want: Message{Type: TypeSetup, ID: "999", Policy: "999", ListenPort: 999},
		},
		{
			name: "reply with extra fields and odd ids",
			in:   `{"type":2,"srcid":"server-A","destid":null,"payloadsize":40,"payload":"abc","ttl":3,"route":["x"],"meta":{"k":1}}`,
			want: Message{Type: TypeReply, SrcID: "server-A", PayloadSize: 40, Payload: "abc"},
		},
		{
			name: "ids of other kinds",
			in:   `{"type":0,"srcid":true,"destid":1.5,"payload":42}`,
			want: Message{Type: TypeData, SrcID: "true", DestID: "1.5", Payload: "42"},
		},
		{
			name: "error with code",
			in:   `{"type":3,"srcid":"proxy","destid":50,"payload":"no server for policy PP_9","code":"no_server"}`,
			want: Message{Type: TypeError, SrcID: "proxy", DestID: "50", Payload: "no server for policy PP_9", Code: "no_server"},
		},
		{
			name: "unicode payload and escapes",
			in:   `{"type":0,"payload":"h\u00e9llo \"w\" \n ✓"}`,
			want: Message{Type: TypeData, Payload: "héllo \"w\" \n ✓"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Message
			quoted, err := decodeMessage([]byte(tt.in), &got)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			if quoted != tt.quoted {
				t.Errorf("quoted = %v, want %v", quoted, tt.quoted)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, in := range []string{
		`{"srcid":1}`,                 // no type
		`{"type":"zero"}`,             // type not a number
		`{"type":1.5}`,                // not an integer
		`{"type":1,"listenport":"x"}`, // bad port
		`{"type":0,"payloadsize":[]}`, // bad size
		`{"type":0,`,                  // not JSON
		`[0]`,                         // not an object
	} {
		var m Message
		if _, err := decodeMessage([]byte(in), &m); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: err = %v, want ErrBadMessage", in, err)
		}
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		name   string
		m      Message
		quoted bool
		want   string
	}{
		{
			name: "data, homework style",
			m:    Message{Type: TypeData, SrcID: "50", Policy: "PP_1", PayloadSize: 5, Payload: "hello"},
			want: `{"type":0,"srcid":50,"privPoliId":"PP_1","payloadsize":5,"payload":"hello"}`,
		},
		{
			name:   "data, tutorial style",
			m:      Message{Type: TypeData, SrcID: "50", Policy: "PP_1", PayloadSize: 5, Payload: "hello"},
			quoted: true,
			want:   `{"type":"0","srcid":"50","privPoliId":"PP_1","payloadsize":"5","payload":"hello"}`,
		},
		{
			name: "setup writes both spellings",
			m:    Message{Type: TypeSetup, ID: "100", Policy: "PP_1", ListenPort: 124, Hold: true},
			want: `{"type":1,"id":100,"privPolyId":"PP_1","privPoliId":"PP_1","listenport":124,"hold":true}`,
		},
		{
			name:   "setup, tutorial style",
			m:      Message{Type: TypeSetup, ID: "100", Policy: "PP_1", ListenPort: 124},
			quoted: true,
			want:   `{"type":"1","id":"100","privPolyId":"PP_1","privPoliId":"PP_1","listenport":"124"}`,
		},
		{
			name: "setup with a weight and an HTTP service",
			m:    Message{Type: TypeSetup, ID: "100", Policy: "PP_1", Mux: true, Weight: 2, HTTPPort: 8080},
			want: `{"type":1,"id":100,"privPolyId":"PP_1","privPoliId":"PP_1","listenport":0,"mux":true,"weight":2,"httpport":8080}`,
		},
		{
			name: "reply with a non-numeric id",
			m:    Message{Type: TypeReply, SrcID: "alpha", DestID: "007", PayloadSize: 2, Payload: "ok"},
			want: `{"type":2,"srcid":"alpha","destid":"007","payloadsize":2,"payload":"ok"}`,
		},
		{
			name: "error with code",
			m:    Message{Type: TypeError, SrcID: "proxy", DestID: "50", PayloadSize: 4, Payload: "oops", Code: "no_server"},
			want: `{"type":3,"srcid":"proxy","destid":50,"payloadsize":4,"payload":"oops","code":"no_server"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendMessage(nil, &tt.m, tt.quoted))
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			var back Message
			if _, err := decodeMessage([]byte(got), &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.m, back); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMessageJSON(t *testing.T) {
	in := Message{Type: TypeData, SrcID: "50", Policy: "PP_1", PayloadSize: 2, Payload: "hi"}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Message
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("json round trip of %s (-want +got):\n%s", data, diff)
	}
}

func TestPayloadLenCountsCharacters(t *testing.T) {
	if got := PayloadLen("héllo ✓"); got != 7 {
		t.Errorf("PayloadLen = %d, want 7 (as Python's len)", got)
	}
}

// FuzzDecode checks that decoding never panics and that whatever decodes
// encodes to a message that decodes the same way, in both styles.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type": 0, "srcid": 50, "privPoliId": "PP_1", "payloadsize": 5, "payload": "hello"}`))
	f.Add([]byte(`{"type": "1", "id": "100", "privPolyId": "PP_1", "listenport": "124"}`))
	f.Add([]byte(`{"type":3,"srcid":"proxy","destid":50,"payload":"x","code":"no_server","hold":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if _, err := decodeMessage(data, &m); err != nil {
			return
		}
		for _, quoted := range []bool{false, true} {
			enc := appendMessage(nil, &m, quoted)
			var back Message
			if _, err := decodeMessage(enc, &back); err != nil {
				t.Fatalf("%s re-encoded as %s: %v", data, enc, err)
			}
			// Only the keys of the message's type are written.
			var want Message
			switch m.Type {
			case TypePing, TypeDrain:
				want = Message{Type: m.Type, Seq: m.Seq}
			case TypeSetup:
				want = Message{Type: m.Type, ID: m.ID, Policy: m.Policy, ListenPort: m.ListenPort, Hold: m.Hold, Mux: m.Mux, Idempotent: m.Idempotent, Heartbeat: m.Heartbeat, Token: m.Token, Seq: m.Seq}
			case TypeData:
				want = Message{Type: m.Type, SrcID: m.SrcID, Policy: m.Policy, PayloadSize: m.PayloadSize, Payload: m.Payload, Timeout: max(m.Timeout, 0), Seq: m.Seq}
			default:
				want = Message{Type: m.Type, SrcID: m.SrcID, DestID: m.DestID, PayloadSize: m.PayloadSize, Payload: m.Payload, Code: m.Code, Seq: m.Seq}
			}
			if diff := cmp.Diff(want, back); diff != "" {
				t.Fatalf("%s re-encoded as %s (-want +got):\n%s", data, enc, diff)
			}
		}
	})
}
