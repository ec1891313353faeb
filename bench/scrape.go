package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// scrapeEvery is how often the revproxy-scraped system's /metrics is
// fetched: far more often than Prometheus would (15 s is usual), so that
// what watching costs shows.
const scrapeEvery = 100 * time.Millisecond

// scrape fetches url every scrapeEvery until ctx ends, reading each answer
// whole as a scraper does; an answer that is not 200 with a body ends it
// with an error.
func scrape(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(scrapeEvery)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil && ctx.Err() == nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || n == 0 {
			return fmt.Errorf("%s: %s, %d bytes", url, resp.Status, n)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		}
	}
}
