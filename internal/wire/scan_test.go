package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

var keyNames = [NumKeys]string{"type", "id", "privPoliId", "privPolyId", "listenport", "hold", "mux",
	"srcid", "destid", "payloadsize", "payload", "code", "seq", "token", "idempotent", "heartbeat", "timeout",
	"weight", "reqid", "httpport"}

// TestKeyNames: every key has its name here, and lookupKey maps it back; a
// key left out would be compared as "" (FuzzScan found {"":""}).
func TestKeyNames(t *testing.T) {
	for k, name := range keyNames {
		quoted := []byte(`"` + name + `"`)
		if got, ok := lookupKey(quoted, false); name == "" || !ok || got != Key(k) {
			t.Errorf("key %d: name %q looks up as %d, %v", k, name, got, ok)
		}
	}
}

// checkScanMatchesJSON compares Scan with encoding/json decoding data into a
// map of raw values: the same inputs are refused, and each known key has
// the same raw value.
func checkScanMatchesJSON(t *testing.T, data []byte) {
	t.Helper()
	var f Fields
	err := Scan(data, &f)
	var ref map[string]json.RawMessage
	refErr := json.Unmarshal(data, &ref)
	isObject := json.Valid(data) && bytes.TrimLeft(data, " \t\r\n")[0] == '{'
	if isObject != (err == nil) {
		t.Fatalf("%q: Scan err = %v, but encoding/json says valid object: %v (%v)", data, err, isObject, refErr)
	}
	if err != nil {
		if json.Valid(data) != errors.Is(err, ErrNotObject) {
			t.Fatalf("%q: Scan err = %v, json.Valid = %v", data, err, json.Valid(data))
		}
		return
	}
	if refErr != nil {
		t.Fatalf("%q: Scan accepted, encoding/json: %v", data, refErr)
	}
	for k, name := range keyNames {
		raw, ok := ref[name]
		if ok != (f[k] != nil) || !bytes.Equal(raw, f[k]) {
			t.Fatalf("%q: key %s: Scan %q, encoding/json %q (present %v)", data, name, f[k], raw, ok)
		}
		if ok && len(raw) > 0 && raw[0] == '"' {
			var want string
			json.Unmarshal(raw, &want)
			if got := Unquote(f[k]); got != want {
				t.Fatalf("%q: Unquote(%s) = %q, encoding/json %q", data, raw, got, want)
			}
		}
	}
}

var scanSeeds = []string{
	`{"type": 0, "srcid": 50, "privPoliId": "PP_1", "payloadsize": 5, "payload": "hello"}`,
	`{"type": "1", "id": "100", "privPolyId": "PP_1", "listenport": "124", "hold": true, "mux": true}`,
	`{"type":2,"srcid":"a","destid":null,"payload":"x","seq":18446744073709551615,"extra":[1,{"a":[]}]}`,
	` {"\u0074ype" : 3 , "type":4, "code":"\ud83d\ude00 \ud800 \udc00x \u00e9 \"\\\/\b\f\n\r\t"} `,
	`{"payload":"` + "\xff\xfe\xed\xa0\x80 é" + `"}`,
	`{"a":-0.5e+10,"b":1E2,"c":[true,false,null],"d":{}}`,
	`{"type":01}`, `{"type":1.}`, `{"type":-}`, `{"a":"\x01"}`, `{"a":"\u12"}`, `{"a":"\q"}`,
	`{"a":1,}`, `{"a" 1}`, `{"a":1}}`, `{"a":[1,]}`, `{"a":tru}`, `[1,2]`, `"s"`, `null`, `12`, ``, ` `,
	`{"type":1} x`, `{"type":1}{"type":2}`,
}

func TestScanMatchesJSON(t *testing.T) {
	for _, s := range scanSeeds {
		checkScanMatchesJSON(t, []byte(s))
	}
}

func TestScanDepthLimit(t *testing.T) {
	for _, depth := range []int{9999, 10000, 10001} {
		data := []byte(`{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`)
		checkScanMatchesJSON(t, data)
	}
}

func FuzzScan(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkScanMatchesJSON(t, data)
	})
}

func FuzzParseInt(f *testing.F) {
	for _, s := range []string{"0", "-0", "+7", "9223372036854775807", "9223372036854775808",
		"-9223372036854775808", "-9223372036854775809", "", "+", "-", "1_0", " 1", "12a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := strconv.Atoi(s)
		got, ok := ParseInt([]byte(s))
		if ok != (err == nil) || (ok && got != int64(want)) {
			t.Fatalf("ParseInt(%q) = %d, %v; strconv.Atoi = %d, %v", s, got, ok, want, err)
		}
	})
}
