package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// stat sums up the rounds of one point: medians over the rounds, the
// req/s range and the errors of every round.
type stat struct {
	System  string
	Clients int
	Payload int
	NA      string  // why the point did not run; empty when it did
	Rounds  []point // one per round, in the order they ran

	RPS, MinRPS, MaxRPS float64       // median, lowest and highest req/s
	P50, P99            time.Duration // medians over the rounds that answered
	P90, P999           time.Duration // the same, for the 90th and 99.9th percentiles
	CPU                 float64       // median CPU µs/msg over the rounds where it was measured
	Broker, Load        float64       // median broker and load CPU µs/msg (load: every participant but the broker)
	CPUOK               bool          // some round measured CPU
	HasBroker           bool          // the system has a broker process
	Errors              int           // over every round
	FirstErr            string
}

// summarize takes the medians of the rounds of one point.
func summarize(rounds []point) stat {
	s := stat{Rounds: rounds}
	if len(rounds) == 0 {
		return s
	}
	s.System, s.Clients, s.Payload = rounds[0].System, rounds[0].Clients, rounds[0].Payload
	var rps, cpu, broker, load []float64
	var p50, p90, p99, p999 []time.Duration
	for _, p := range rounds {
		rps = append(rps, p.RPS())
		s.Errors += p.Errors
		if s.FirstErr == "" && p.FirstErr != "" {
			s.FirstErr = fmt.Sprintf("round %d: %s", p.Round, p.FirstErr)
		}
		if p.Requests == 0 {
			continue
		}
		p50 = append(p50, p.P50)
		p90 = append(p90, p.P90)
		p99 = append(p99, p.P99)
		p999 = append(p999, p.P999)
		if p.CPUErr == "" {
			cpu = append(cpu, p.CPUPerMsg())
			broker = append(broker, p.BrokerPerMsg())
			load = append(load, p.CPUPerMsg()-p.BrokerPerMsg())
			s.HasBroker = s.HasBroker || p.HasBroker
		}
	}
	s.RPS, s.MinRPS, s.MaxRPS = median(rps), slices.Min(rps), slices.Max(rps)
	s.P50, s.P90, s.P99, s.P999 = medianDur(p50), medianDur(p90), medianDur(p99), medianDur(p999)
	if len(cpu) > 0 {
		s.CPU, s.Broker, s.Load, s.CPUOK = median(cpu), median(broker), median(load), true
	}
	return s
}

// median is the middle value, or the mean of the two middle values; 0 for
// none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m]
	}
	return (v[m-1] + v[m]) / 2
}

func medianDur(d []time.Duration) time.Duration {
	v := make([]float64, len(d))
	for i, x := range d {
		v[i] = float64(x)
	}
	return time.Duration(median(v))
}

// rotate returns s starting at its element k (mod len), wrapping around:
// round k runs the systems in this order, so none is always first or last.
func rotate[T any](s []T, k int) []T {
	if len(s) == 0 {
		return nil
	}
	k %= len(s)
	return append(slices.Clone(s[k:]), s[:k]...)
}

func (s stat) row(name, clients string) string {
	if s.NA != "" {
		return fmt.Sprintf("| %s | %s | %s | %s | | | | | | | |", name, clients, fmtSize(s.Payload), s.NA)
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |", name, clients, fmtSize(s.Payload),
		fmtRate(s.RPS), s.rangeCell(), fmtDur(s.P50), fmtDur(s.P99), s.cpuCell(), s.brokerCell(), s.loadCell(), s.Errors)
}

// rangeCell is the lowest to the highest req/s over the rounds.
func (s stat) rangeCell() string {
	if len(s.Rounds) < 2 {
		return "–"
	}
	return fmtRate(s.MinRPS) + "–" + fmtRate(s.MaxRPS)
}

func (s stat) cpuCell() string {
	if !s.CPUOK {
		return "?"
	}
	return fmt.Sprintf("%.1f", s.CPU)
}

// brokerCell is the broker process's CPU µs/msg; – without a broker process.
func (s stat) brokerCell() string {
	switch {
	case !s.CPUOK:
		return "?"
	case !s.HasBroker:
		return "–"
	}
	return fmt.Sprintf("%.1f", s.Broker)
}

// loadCell is the CPU µs/msg of every participant but the broker.
func (s stat) loadCell() string {
	if !s.CPUOK {
		return "?"
	}
	return fmt.Sprintf("%.1f", s.Load)
}

// note describes what went wrong at a point, if anything, round by round.
func (s stat) note() string {
	var parts []string
	if s.Errors > 0 {
		parts = append(parts, fmt.Sprintf("%d %s over %d %s, first in %s", s.Errors, plural(s.Errors, "error"),
			len(s.Rounds), plural(len(s.Rounds), "round"), oneLine(s.FirstErr)))
	}
	var others []string
	for _, p := range s.Rounds {
		if p.CPUErr != "" {
			parts = append(parts, fmt.Sprintf("CPU not measured in round %d: %s", p.Round, oneLine(p.CPUErr)))
		}
		if p.Others > othersNoted {
			others = append(others, fmt.Sprintf("%.0f%% in round %d", 100*p.Others, p.Round))
		}
	}
	if len(others) > 0 {
		parts = append(parts, "other processes used part of the machine during the window: "+strings.Join(others, ", "))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("`%s` %d clients %s: %s", s.System, s.Clients, fmtSize(s.Payload), strings.Join(parts, "; "))
}

// roundRatios pairs the rounds of a and b by round number and returns a/b
// req/s for each, and how many of them reach goal.
func roundRatios(a, b stat, goal float64) (text string, met, total int) {
	byRound := map[int]point{}
	for _, p := range b.Rounds {
		byRound[p.Round] = p
	}
	var parts []string
	for _, pa := range a.Rounds {
		pb, ok := byRound[pa.Round]
		if !ok {
			continue
		}
		total++
		if pb.RPS() <= 0 {
			parts = append(parts, fmt.Sprintf("round %d: %s / 0 req/s = n/a", pa.Round, fmtRate(pa.RPS())))
			continue
		}
		r := pa.RPS() / pb.RPS()
		if r >= goal {
			met++
		}
		part := fmt.Sprintf("round %d: %s / %s = %.2f×", pa.Round, fmtRate(pa.RPS()), fmtRate(pb.RPS()), r)
		if o := max(pa.Others, pb.Others); o > othersNoted {
			part += fmt.Sprintf(" (other processes up to %.0f%%)", 100*o)
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; "), met, total
}

// pairedRange pairs the rounds of a and b by round number and gives the
// lowest and highest a/b req/s ratio, and in how many rounds a was at least
// as fast as b; – with fewer than two pairs.
func pairedRange(a, b stat) string {
	byRound := map[int]point{}
	for _, p := range b.Rounds {
		byRound[p.Round] = p
	}
	var ratios []float64
	for _, pa := range a.Rounds {
		if pb, ok := byRound[pa.Round]; ok && pa.RPS() > 0 && pb.RPS() > 0 {
			ratios = append(ratios, pa.RPS()/pb.RPS())
		}
	}
	if len(ratios) < 2 {
		return "–"
	}
	atLeast := 0
	for _, r := range ratios {
		if r >= 1 {
			atLeast++
		}
	}
	return fmt.Sprintf("%.2f–%.2f× (%d of %d ≥ 1.00×)", slices.Min(ratios), slices.Max(ratios), atLeast, len(ratios))
}
