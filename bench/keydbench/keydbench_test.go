package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const wrkReport = `Running 5s test @ http://127.0.0.1:41234/.well-known/jwks.json
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.61ms    3.02ms  51.20ms   88.10%
    Req/Sec    13.10k     1.20k   16.00k    70.00%
  Latency Distribution
     50%    1.72ms
     75%  912.50us
     90%    4.99ms
     99%    1.02s
  130421 requests in 5.00s, 80.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  26081.45
Transfer/sec:     16.02MB
`

func TestParseWrk(t *testing.T) {
	for _, tc := range []struct {
		name    string
		report  string
		want    wrkResult
		wantErr string
	}{
		{
			name:   "full report",
			report: wrkReport,
			want: wrkResult{requests: 130421, perSecond: 26081.45, p50: 1720 * time.Microsecond,
				p75: 912500 * time.Nanosecond, p90: 4990 * time.Microsecond,
				p99: 1020 * time.Millisecond, bad: 7},
		},
		{
			name:    "no latency distribution",
			report:  "  10 requests in 1.00s, 1KB read\nRequests/sec: 10.00\n",
			wantErr: "no 50%",
		},
		{
			name:    "unknown unit",
			report:  strings.Replace(wrkReport, "4.99ms", "4.99h", 1),
			wantErr: "unknown unit",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseWrk(tc.report)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	samples := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, tc := range []struct {
		name string
		p    float64
		want time.Duration
	}{
		{name: "smallest", p: 0.001, want: 1},
		{name: "median", p: 50, want: 5},
		{name: "p90", p: 90, want: 9},
		{name: "p99", p: 99, want: 10},
		{name: "max", p: 100, want: 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(samples, tc.p); got != tc.want {
				t.Fatalf("percentile %v = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func TestWriteSectionKeepsTheOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.md")
	steps := []struct {
		name, section, body string
		want                []string
	}{
		{name: "creates the file", section: "http", body: "one\n",
			want: []string{"# keyd benchmark results", "one\n"}},
		{name: "appends another section", section: "scale", body: "two\n",
			want: []string{"one\n", "two\n"}},
		{name: "replaces its own section only", section: "http", body: "three\n",
			want: []string{"three\n", "two\n"}},
	}
	for _, step := range steps {
		if err := writeSection(path, step.section, step.body); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range step.want {
			if !strings.Contains(string(data), w) {
				t.Fatalf("%s: no %q in\n%s", step.name, w, data)
			}
		}
		if strings.Contains(string(data), "one\n") && step.body == "three\n" {
			t.Fatalf("%s: the old section is still there\n%s", step.name, data)
		}
	}
}
