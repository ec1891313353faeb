package main

import (
	"fmt"
	"math"
	"strings"
)

// series is one line of the chart.
type series struct {
	name   string
	points []stat // by clients, ascending
}

var seriesStyle = map[string]struct{ color, dash string }{
	"direct":            {"#6b6b6b", "6 4"},
	"revproxy":          {"#1f6fd1", ""},
	"revproxy-legacy":   {"#7fb2f0", "8 3 2 3"},
	"revproxy-inproc":   {"#1f6fd1", "2 4"},
	"revproxy-baseline": {"#0b3d7a", "4 3"},
	"nats":              {"#2a9d3f", ""},
	"seed":              {"#d1352b", ""},
}

// throughputSVG draws the median req/s against clients, both on log scales,
// with a bar from the lowest to the highest round at each point. The points
// of the series are set a few pixels apart so that their bars do not hide
// one another.
func throughputSVG(title, subtitle string, clients []int, lines []series) string {
	const (
		width, height   = 800, 460
		left, right     = 84, 600 // plot area
		top, bottom     = 66, 392
		legendX, xInset = 622, 28
	)
	// Value range over every plotted point.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range lines {
		for _, p := range s.points {
			if p.NA == "" && p.RPS > 0 {
				lo, hi = math.Min(lo, p.RPS), math.Max(hi, p.MaxRPS)
				if p.MinRPS > 0 {
					lo = math.Min(lo, p.MinRPS)
				}
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	yMin := math.Pow(10, math.Floor(math.Log10(lo)))
	yMax := math.Pow(10, math.Ceil(math.Log10(hi)))
	if yMax <= yMin {
		yMax = yMin * 10
	}
	maxClients := clients[len(clients)-1]
	xOf := func(c int) float64 {
		if maxClients <= 1 {
			return (left + right) / 2
		}
		f := math.Log(float64(c)) / math.Log(float64(maxClients))
		return left + xInset + f*(right-left-2*xInset)
	}
	yOf := func(v float64) float64 {
		f := (math.Log10(v) - math.Log10(yMin)) / (math.Log10(yMax) - math.Log10(yMin))
		return bottom - f*(bottom-top)
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="26" font-size="17" font-weight="bold" fill="#222">%s</text>`+"\n", left, esc(title))
	fmt.Fprintf(&b, `<text x="%d" y="44" font-size="12" fill="#666">%s</text>`+"\n", left, esc(subtitle))

	// Horizontal grid and y labels at 1, 2 and 5 times each power of ten.
	for dec := yMin; dec < yMax*1.001; dec *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := dec * m
			if v > yMax*1.001 {
				break
			}
			y := yOf(v)
			stroke, w := "#e4e4e4", 1.0
			if m == 1 {
				stroke = "#c8c8c8"
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="%.0f"/>`+"\n", left, y, right, y, stroke, w)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="12" fill="#444" text-anchor="end">%s</text>`+"\n", left-8, y+4, shortCount(v))
		}
	}
	// Vertical grid and x labels at each concurrency.
	for _, c := range clients {
		x := xOf(c)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e4e4e4"/>`+"\n", x, top, x, bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="12" fill="#444" text-anchor="middle">%d</text>`+"\n", x, bottom+18, c)
	}
	// Axes and their titles.
	fmt.Fprintf(&b, `<polyline points="%d,%d %d,%d %d,%d" fill="none" stroke="#333" stroke-width="1.2"/>`+"\n", left, top, left, bottom, right, bottom)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" fill="#222" text-anchor="middle">concurrent clients, one connection each (log scale)</text>`+"\n", (left+right)/2, bottom+44)
	fmt.Fprintf(&b, `<text transform="translate(22 %d) rotate(-90)" font-size="13" fill="#222" text-anchor="middle">requests per second (log scale)</text>`+"\n", (top+bottom)/2)

	// Lines, range bars, markers and the legend.
	for i, s := range lines {
		dx := (float64(i) - float64(len(lines)-1)/2) * 5
		st := seriesStyle[s.name]
		if st.color == "" {
			st.color = "#000"
		}
		width := 2.0
		if s.name == "revproxy" {
			width = 3
		}
		var pts []string
		for _, p := range s.points {
			if p.NA != "" || p.RPS <= 0 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(p.Clients)+dx, yOf(p.RPS)))
		}
		dash := ""
		if st.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, st.dash)
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="%.0f"%s stroke-linejoin="round"/>`+"\n", strings.Join(pts, " "), st.color, width, dash)
		}
		for _, p := range s.points {
			if p.NA != "" || p.RPS <= 0 || len(p.Rounds) < 2 {
				continue
			}
			x, y0, y1 := xOf(p.Clients)+dx, yOf(max(p.MinRPS, yMin)), yOf(p.MaxRPS)
			fmt.Fprintf(&b, `<path d="M%.1f,%.1f V%.1f M%.1f,%.1f h6 M%.1f,%.1f h6" stroke="%s" stroke-width="1.5" fill="none"/>`+"\n",
				x, y0, y1, x-3, y0, x-3, y1, st.color)
		}
		for _, xy := range pts {
			x, y, _ := strings.Cut(xy, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="4" fill="%s" stroke="#fff" stroke-width="1"/>`+"\n", x, y, st.color)
		}
		ly := top + 8 + i*26
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="%.0f"%s/>`+"\n", legendX, ly, legendX+30, ly, st.color, width, dash)
		fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="4" fill="%s"/>`+"\n", legendX+15, ly, st.color)
		label := s.name
		if len(pts) == 0 {
			label += " (no data)"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" fill="#222">%s</text>`+"\n", legendX+38, ly+4, esc(label))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// shortCount writes 1000 as 1k and 2000000 as 2M.
func shortCount(v float64) string {
	switch {
	case v >= 1e6:
		return trimZero(v/1e6) + "M"
	case v >= 1e3:
		return trimZero(v/1e3) + "k"
	}
	return trimZero(v)
}

func trimZero(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	return strings.TrimSuffix(s, ".0")
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
