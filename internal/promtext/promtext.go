// Package promtext writes the Prometheus text exposition format, version
// 0.0.4, into a byte slice: small enough to write by hand, and checked by
// the tests of its users with the Prometheus project's own parser.
package promtext

import (
	"strconv"
	"unicode/utf8"
)

// Writer appends the Prometheus text format to B, without fmt and
// without allocating beyond B.
type Writer struct{ B []byte }

// Label is one label of a sample.
type Label struct{ Name, Value string }

// Family begins a metric family. help is the caller's own text, with no
// backslash or newline to escape.
func (m *Writer) Family(name, typ, help string) {
	m.B = append(m.B, "# HELP "...)
	m.B = append(m.B, name...)
	m.B = append(m.B, ' ')
	m.B = append(m.B, help...)
	m.B = append(m.B, "\n# TYPE "...)
	m.B = append(m.B, name...)
	m.B = append(m.B, ' ')
	m.B = append(m.B, typ...)
	m.B = append(m.B, '\n')
}

// Uint appends a sample.
func (m *Writer) Uint(name string, v uint64, labels ...Label) {
	m.series(name, labels)
	m.B = strconv.AppendUint(m.B, v, 10)
	m.B = append(m.B, '\n')
}

// Int appends a sample.
func (m *Writer) Int(name string, v int64, labels ...Label) {
	m.series(name, labels)
	m.B = strconv.AppendInt(m.B, v, 10)
	m.B = append(m.B, '\n')
}

// Float appends a sample.
func (m *Writer) Float(name string, v float64, labels ...Label) {
	m.series(name, labels)
	m.B = strconv.AppendFloat(m.B, v, 'g', -1, 64)
	m.B = append(m.B, '\n')
}

// series appends a sample's name and labels, and the space before its
// value.
func (m *Writer) series(name string, labels []Label) {
	m.B = append(m.B, name...)
	if len(labels) > 0 {
		m.B = append(m.B, '{')
		for i, l := range labels {
			if i > 0 {
				m.B = append(m.B, ',')
			}
			m.B = append(m.B, l.Name...)
			m.B = append(m.B, `="`...)
			m.B = appendLabelValue(m.B, l.Value)
			m.B = append(m.B, '"')
		}
		m.B = append(m.B, '}')
	}
	m.B = append(m.B, ' ')
}

// appendLabelValue appends s escaped as the text format wants a label
// value: backslash, double quote and newline escaped, and bytes that are
// not UTF-8 replaced with U+FFFD. Label values may come from peers
// (server ids, policies) and must not break the format.
func appendLabelValue(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '\\':
				b = append(b, `\\`...)
			case '"':
				b = append(b, `\"`...)
			case '\n':
				b = append(b, `\n`...)
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

// Histogram appends a histogram's samples: name_bucket for each bound in
// les (the "le" label values, in seconds) with the cumulative counts in
// buckets (missing ones taken as 0), the +Inf bucket, name_sum and
// name_count.
func (m *Writer) Histogram(name string, les []string, buckets []uint64, count uint64, sum float64, labels ...Label) {
	all := append(labels, Label{Name: "le"})
	for i, le := range les {
		var n uint64
		if i < len(buckets) {
			n = buckets[i]
		}
		all[len(all)-1].Value = le
		m.Uint(name+"_bucket", n, all...)
	}
	all[len(all)-1].Value = "+Inf"
	m.Uint(name+"_bucket", count, all...)
	m.Float(name+"_sum", sum, labels...)
	m.Uint(name+"_count", count, labels...)
}
