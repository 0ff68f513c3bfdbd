package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// load is how wrk drives a server.
type load struct {
	threads     int
	connections int
	duration    time.Duration
}

// wrkResult is what one wrk run measured.
type wrkResult struct {
	requests  int64
	perSecond float64
	// latency percentiles as wrk --latency reports them: 50, 75, 90 and 99.
	p50, p75, p90, p99 time.Duration
	// bad counts socket errors and responses other than 2xx or 3xx.
	bad int64
	// cpuPerRequest is the server's CPU time divided by the requests it served.
	cpuPerRequest time.Duration
}

// runWrk sends GET url with the given header lines for l.duration and parses wrk's report.
func runWrk(l load, url string, header ...string) (wrkResult, error) {
	args := []string{"--latency", "-t", strconv.Itoa(l.threads), "-c",
		strconv.Itoa(l.connections), "-d", fmt.Sprintf("%ds", int(l.duration.Seconds())),
		"--timeout", "5s"}
	for _, h := range header {
		args = append(args, "-H", h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.duration+time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	res, err := parseWrk(string(out))
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	return res, nil
}

// parseWrk reads the report of `wrk --latency`.
func parseWrk(report string) (wrkResult, error) {
	var (
		res  wrkResult
		seen = map[string]bool{}
	)
	sc := bufio.NewScanner(strings.NewReader(report))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		var err error
		switch {
		case len(f) == 2 && (f[0] == "50%" || f[0] == "75%" || f[0] == "90%" || f[0] == "99%"):
			d, perr := parseWrkDuration(f[1])
			err = perr
			switch f[0] {
			case "50%":
				res.p50 = d
			case "75%":
				res.p75 = d
			case "90%":
				res.p90 = d
			case "99%":
				res.p99 = d
			}
			seen[f[0]] = true
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			res.requests, err = strconv.ParseInt(f[0], 10, 64)
			seen["requests"] = true
		case len(f) == 2 && f[0] == "Requests/sec:":
			res.perSecond, err = strconv.ParseFloat(f[1], 64)
			seen["rps"] = true
		case len(f) >= 2 && f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				n, perr := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if perr != nil {
					err = perr
					break
				}
				res.bad += n
			}
		case len(f) == 5 && f[0] == "Non-2xx":
			var n int64
			n, err = strconv.ParseInt(f[4], 10, 64)
			res.bad += n
		}
		if err != nil {
			return wrkResult{}, fmt.Errorf("read %q: %w", sc.Text(), err)
		}
	}
	for _, want := range []string{"50%", "75%", "90%", "99%", "requests", "rps"} {
		if !seen[want] {
			return wrkResult{}, fmt.Errorf("no %s in the report", want)
		}
	}
	return res, nil
}

// parseWrkDuration reads wrk's latencies: "635.91us", "1.02ms", "2.00s", "1.50m".
func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{
		{suffix: "us", unit: time.Microsecond},
		{suffix: "ms", unit: time.Millisecond},
		{suffix: "s", unit: time.Second},
		{suffix: "m", unit: time.Minute},
	} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("latency %q: %w", s, err)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("latency %q: unknown unit", s)
}
