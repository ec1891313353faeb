package wire

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func readAll(t *testing.T, r io.Reader, max int) ([]string, error) {
	t.Helper()
	wr := NewReader(r, max)
	var got []string
	for {
		obj, err := wr.Next()
		if err != nil {
			if err == io.EOF {
				return got, nil
			}
			return got, err
		}
		got = append(got, string(obj))
	}
}

func TestReaderSplitsObjects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"one, no newline", `{"type":0}`, []string{`{"type":0}`}},
		{"one, newline", "{\"type\":0}\n", []string{`{"type":0}`}},
		{"two in one read", `{"a":1}{"b":2}`, []string{`{"a":1}`, `{"b":2}`}},
		{"white space between", " \r\n{\"a\":1}\t \n {\"b\":2}\n\n", []string{`{"a":1}`, `{"b":2}`}},
		{"braces in strings", `{"p":"}{\"}"}{"q":"\\"}`, []string{`{"p":"}{\"}"}`, `{"q":"\\"}`}},
		{"nested", `{"a":{"b":[1,{"c":2}]}}{}`, []string{`{"a":{"b":[1,{"c":2}]}}`, `{}`}},
		{"empty stream", "", nil},
		{"only white space", " \n ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, split := range []struct {
				name string
				r    func(string) io.Reader
			}{
				{"whole", func(s string) io.Reader { return strings.NewReader(s) }},
				{"byte by byte", func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
				{"half", func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) }},
			} {
				got, err := readAll(t, split.r(tt.in), 1<<10)
				if err != nil {
					t.Fatalf("%s: %v", split.name, err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("%s: objects (-want +got):\n%s", split.name, diff)
				}
			}
		})
	}
}

func TestReaderErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want error
	}{
		{"cut inside object", `{"a":"b`, 100, io.ErrUnexpectedEOF},
		{"too large", `{"a":"` + strings.Repeat("x", 100) + `"}`, 64, ErrTooLarge},
		{"exactly the limit", `{"a":"` + strings.Repeat("x", 56) + `"}`, 64, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readAll(t, iotest.HalfReader(strings.NewReader(tt.in)), tt.max)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReaderRefusesNonObject(t *testing.T) {
	for _, in := range []string{`[1]`, `"x"`, `12`, `x{}`} {
		_, err := readAll(t, strings.NewReader(in), 100)
		var se *SyntaxError
		if !errors.As(err, &se) || se.Byte != in[0] {
			t.Errorf("%q: err = %v, want SyntaxError for %q", in, err, in[0])
		}
	}
}

// TestReaderDoesNotBufferPastLimit checks that an endless object is refused
// after about the limit, not read to the end.
func TestReaderDoesNotBufferPastLimit(t *testing.T) {
	endless := io.MultiReader(strings.NewReader(`{"a":"`), infinite{})
	r := NewReader(endless, 1<<16)
	if _, err := r.Next(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if cap(r.buf) > 1<<16+1 {
		t.Errorf("buffered %d bytes for a limit of %d", cap(r.buf), 1<<16)
	}
}

type infinite struct{}

func (infinite) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// TestReaderSkipsTooLarge checks that a skipping reader passes over an
// object over its limit, without buffering it, and reads on in step.
func TestReaderSkipsTooLarge(t *testing.T) {
	big := `{"type":0,"seq":7,"payload":"` + strings.Repeat(`x}{\"`, 50000) + `"}`
	in := `{"a":1}` + big + "\n" + `{"b":2}` + big + `{"c":3}`
	for _, split := range []struct {
		name string
		r    io.Reader
	}{
		{"whole", strings.NewReader(in)},
		{"byte by byte", iotest.OneByteReader(strings.NewReader(in))},
		{"half", iotest.HalfReader(strings.NewReader(in))},
	} {
		r := NewReader(split.r, 1000)
		r.Skip = true
		var got []string
		for {
			obj, err := r.Next()
			if err == io.EOF {
				break
			}
			var tl *TooLargeError
			switch {
			case errors.As(err, &tl):
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("%s: %v does not match ErrTooLarge", split.name, err)
				}
				var f Fields
				ScanPrefix(tl.Prefix, &f)
				got = append(got, "too large, seq "+string(f[KeySeq]))
			case err != nil:
				t.Fatalf("%s: %v", split.name, err)
			default:
				got = append(got, string(obj))
			}
			if cap(r.buf) > keepBuffer {
				t.Fatalf("%s: buffer grew to %d", split.name, cap(r.buf))
			}
		}
		want := []string{`{"a":1}`, "too large, seq 7", `{"b":2}`, "too large, seq 7", `{"c":3}`}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: (-want +got):\n%s", split.name, diff)
		}
	}
}

// TestScanPrefix checks that only complete pairs of a cut object count.
func TestScanPrefix(t *testing.T) {
	for _, tt := range []struct{ in, seq, src string }{
		{`{"type":0,"seq":12`, "", ""},
		{`{"type":0,"seq":12,`, "12", ""},
		{`{"type":0,"seq":12,"srcid":"ab`, "12", ""},
		{`{"seq":"9","srcid":"ab","pay`, `"9"`, `"ab"`},
		{`{"x":[1,{"seq":3}],"seq":4}`, "4", ""},
		{`[`, "", ""},
	} {
		var f Fields
		ScanPrefix([]byte(tt.in), &f)
		if string(f[KeySeq]) != tt.seq || string(f[KeySrcID]) != tt.src {
			t.Errorf("%s: seq %q srcid %q, want %q %q", tt.in, f[KeySeq], f[KeySrcID], tt.seq, tt.src)
		}
	}
}

type countingBudget struct{ used, max int }

func (b *countingBudget) Take(n int) bool {
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *countingBudget) Give(n int) { b.used -= n }

// TestReaderBudget checks that a reader's buffers are taken from its budget,
// refused past it, and given back.
func TestReaderBudget(t *testing.T) {
	b := &countingBudget{max: 32 << 10}
	r := NewReader(strings.NewReader(`{"a":"`+strings.Repeat("x", 12000)+`"}`), 1<<20)
	r.Budget = b
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if b.used != len(r.buf) || b.used == 0 {
		t.Fatalf("budget used %d, buffer %d", b.used, len(r.buf))
	}
	r.Release()
	if b.used != 0 {
		t.Fatalf("budget used %d after Release", b.used)
	}
	r = NewReader(io.MultiReader(strings.NewReader(`{"a":"`), infinite{}), 1<<20)
	r.Budget = b
	if _, err := r.Next(); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("err = %v, want ErrNoMemory", err)
	}
	if b.used > b.max {
		t.Fatalf("budget used %d over %d", b.used, b.max)
	}
	r.Release()
	if b.used != 0 {
		t.Fatalf("budget used %d after Release", b.used)
	}
}
