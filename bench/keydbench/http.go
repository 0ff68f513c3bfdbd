package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

const jwksPath = "/.well-known/jwks.json"

// headersCompared are the response headers nginx must send as keyd does.
var headersCompared = []string{"Content-Type", "Content-Length", "ETag", "Cache-Control",
	"Access-Control-Allow-Origin", "X-Content-Type-Options"}

type httpFlags struct {
	common
	load
	rounds       int
	rotations    int
	rsaRotations int
	starts       int
}

func benchHTTP(args []string) (string, error) {
	var f httpFlags
	fs := flag.NewFlagSet("http", flag.ExitOnError)
	f.register(fs)
	fs.IntVar(&f.rounds, "rounds", 5, "wrk runs per server, alternating; the median is kept")
	fs.DurationVar(&f.duration, "duration", 3*time.Second, "length of one wrk run")
	fs.IntVar(&f.threads, "threads", 2, "wrk threads")
	fs.IntVar(&f.connections, "connections", 64, "wrk connections")
	fs.IntVar(&f.rotations, "rotations", 100, "SIGUSR1 samples on an ES256 keyset")
	fs.IntVar(&f.rsaRotations, "rsa-rotations", 20, "SIGUSR1 samples on an RS256 keyset")
	fs.IntVar(&f.starts, "starts", 10, "start-up samples, first start and restart each")
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return "", fmt.Errorf("wrk is not installed (apt-get install wrk): %w", err)
	}

	served, err := compareServers(f)
	if err != nil {
		return "", err
	}
	timings, err := timeLifecycle(f)
	if err != nil {
		return "", err
	}
	section := "## JWKS over HTTP, next to nginx\n\n" + served + "\n" +
		"## Rotation and start-up\n\n" + timings + "\nMachine: " + machine() +
		".\n" + command()
	return section, writeSection(f.results, "http", section)
}

// compareServers runs wrk against keyd and nginx serving the same JWKS, in alternating
// rounds, and tabulates each server's median round.
func compareServers(f httpFlags) (string, error) {
	dir, err := f.workDir("http")
	if err != nil {
		return "", err
	}
	keyd, err := startKeyd(f.keyd, dir, keysetTOML("default", "ES256", 0, "1h"))
	if err != nil {
		return "", err
	}
	if _, err := keyd.waitReady("/readyz", time.Now()); err != nil {
		return "", err
	}
	body, header, err := fetch(keyd.url(jwksPath))
	if err != nil {
		return "", err
	}
	nginxDir, err := f.workDir("nginx")
	if err != nil {
		return "", err
	}
	nginx, err := startNginx(nginxDir, jwksPath, body, header)
	if err != nil {
		return "", err
	}
	if err := nginx.waitAnswer(jwksPath); err != nil {
		return "", err
	}
	if err := sameResponse(nginx.url(jwksPath), body, header); err != nil {
		return "", err
	}

	warm := f.load
	warm.duration = time.Second
	servers := []struct {
		name string
		p    *process
	}{{name: "keyd", p: keyd}, {name: "nginx", p: nginx}}
	results := map[string][]wrkResult{}
	for round := 0; round <= f.rounds; round++ {
		for _, s := range servers {
			l := f.load
			if round == 0 {
				l = warm
			}
			res, err := measure(l, s.p, s.p.url(jwksPath))
			if err != nil {
				return "", fmt.Errorf("%s: %w", s.name, err)
			}
			if round > 0 {
				results[s.name] = append(results[s.name], res)
			}
		}
	}

	keydPeak, _, err := memory(keyd.cmd.Process.Pid)
	if err != nil {
		return "", err
	}
	nginxPeak, err := treePeak(nginx.cmd.Process.Pid)
	if err != nil {
		return "", err
	}
	version, _ := exec.Command("nginx", "-v").CombinedOutput()
	k, n := results["keyd"], results["nginx"]
	row := func(name string, runs []wrkResult, peak int64) []string {
		r := median(runs, func(r wrkResult) float64 { return r.perSecond })
		cpu := median(runs, func(r wrkResult) float64 { return float64(r.cpuPerRequest) })
		return []string{name, fmt.Sprintf("%.0f", r.perSecond),
			fmt.Sprintf("%.1f µs", float64(cpu.cpuPerRequest)/float64(time.Microsecond)),
			ms(r.p50), ms(r.p75), ms(r.p90), ms(r.p99), mib(peak)}
	}
	out := table(
		[]string{"server", "requests/s", "CPU per request", "p50", "p75", "p90", "p99",
			"peak RSS"},
		[][]string{
			row("keyd", k, keydPeak),
			row(strings.TrimPrefix(strings.TrimSpace(string(version)), "nginx version: ")+
				" (all workers)", n, nginxPeak),
		})
	var rateRatios, cpuRatios []float64
	for i := range k {
		rateRatios = append(rateRatios, k[i].perSecond/n[i].perSecond)
		cpuRatios = append(cpuRatios, float64(n[i].cpuPerRequest)/float64(k[i].cpuPerRequest))
	}
	out += fmt.Sprintf("\nkeyd / nginx: requests per second **%.2f**, requests per CPU second "+
		"**%.2f** (medians of the per-round ratios).\n\n"+
		"Each round runs wrk for %s against keyd, then against nginx (%d threads, %d "+
		"keep-alive connections, `GET %s`, the same %d-byte ES256 JWKS and headers), after a "+
		"1 s warm-up each; a row shows its server's median round for requests/s and the "+
		"latencies, and its median CPU time (user + system, from /proc) per request served. "+
		"wrk shares the two cores with the server, so requests/s depends on what else runs; "+
		"CPU per request much less so. Rounds in requests/s: keyd %s; nginx %s.\n",
		medianOf(rateRatios), medianOf(cpuRatios), f.duration, f.threads, f.connections,
		jwksPath, len(body), rates(k), rates(n))
	return out, errors.Join(keyd.stop(), nginx.stop())
}

// measure runs wrk against url and adds the CPU time server p spent per request.
func measure(l load, p *process, url string) (wrkResult, error) {
	before, err := treeCPU(p.cmd.Process.Pid)
	if err != nil {
		return wrkResult{}, err
	}
	res, err := runWrk(l, url)
	if err != nil {
		return wrkResult{}, err
	}
	after, err := treeCPU(p.cmd.Process.Pid)
	if err != nil {
		return wrkResult{}, err
	}
	if res.bad > 0 {
		return wrkResult{}, fmt.Errorf("%d errors or bad responses under load", res.bad)
	}
	if res.requests > 0 {
		res.cpuPerRequest = (after - before) / time.Duration(res.requests)
	}
	return res, nil
}

// median returns the run with the median value of key.
func median(runs []wrkResult, key func(wrkResult) float64) wrkResult {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b wrkResult) int { return cmp.Compare(key(a), key(b)) })
	return sorted[len(sorted)/2]
}

func medianOf(values []float64) float64 {
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}

func rates(runs []wrkResult) string {
	var s []string
	for _, r := range runs {
		s = append(s, fmt.Sprintf("%.0f", r.perSecond))
	}
	return strings.Join(s, ", ")
}

func fetch(url string) ([]byte, http.Header, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, resp.Header, nil
}

// sameResponse checks that url serves body with the compared headers of want.
func sameResponse(url string, body []byte, want http.Header) error {
	got, header, err := fetch(url)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, body) {
		return fmt.Errorf("GET %s: body differs from keyd's", url)
	}
	for _, h := range headersCompared {
		if header.Get(h) != want.Get(h) {
			return fmt.Errorf("GET %s: %s %q, keyd sends %q", url, h, header.Get(h), want.Get(h))
		}
	}
	return nil
}

// treePeak adds up the peak RSS of pid and its children (nginx's master and workers).
func treePeak(pid int) (int64, error) {
	var total int64
	for _, p := range append(children(pid), pid) {
		peak, _, err := memory(p)
		if err != nil {
			return 0, err
		}
		total += peak
	}
	return total, nil
}

// keysetTOML is one [[keyset]] table. rsaBits is for RS*/PS* only.
func keysetTOML(name, alg string, rsaBits int, publishLead string) string {
	s := fmt.Sprintf("\n[[keyset]]\nname = %q\nalgorithm = %q\nschedule = \"@daily\"\n"+
		"publish_lead = %q\n", name, alg, publishLead)
	if rsaBits > 0 {
		s += fmt.Sprintf("rsa_bits = %d\n", rsaBits)
	}
	return s
}

// timeLifecycle measures SIGUSR1 to the new kid being served, and start-up to ready.
func timeLifecycle(f httpFlags) (string, error) {
	var rows [][]string
	for _, r := range []struct {
		what    string
		alg     string
		rsaBits int
		samples int
	}{
		{what: "SIGUSR1 → new current kid served, ES256", alg: "ES256", samples: f.rotations},
		{what: "SIGUSR1 → new current kid served, RS256 2048 bits", alg: "RS256",
			rsaBits: 2048, samples: f.rsaRotations},
	} {
		samples, err := rotationLatency(f, r.alg, r.rsaBits, r.samples)
		if err != nil {
			return "", fmt.Errorf("%s: %w", r.what, err)
		}
		rows = append(rows, summary(r.what, samples))
	}
	first, again, err := startupTimes(f)
	if err != nil {
		return "", err
	}
	rows = append(rows,
		summary("start → /readyz 200, first start (creates current and next)", first),
		summary("start → /readyz 200, restart on existing keys", again))
	return table([]string{"measure", "samples", "p50", "p99", "max"}, rows) +
		"\nRotation: publish_lead 100ms so each SIGUSR1 promotes at once (as `keyd rotate " +
		"--immediate` would); the time runs from the signal to the first GET of the JWKS " +
		"that lists the former next key first. Keys on local disk (" + fsOf(f.dir) + ").\n", nil
}

func summary(what string, samples []time.Duration) []string {
	return []string{what, fmt.Sprint(len(samples)), ms(percentile(samples, 50)),
		ms(percentile(samples, 99)), ms(percentile(samples, 100))}
}

// rotationLatency signals SIGUSR1 samples times and measures how long each takes to show
// as a new first kid in the JWKS.
func rotationLatency(f httpFlags, alg string, rsaBits, samples int) ([]time.Duration, error) {
	const lead = 100 * time.Millisecond
	dir, err := f.workDir("rotate")
	if err != nil {
		return nil, err
	}
	keyd, err := startKeyd(f.keyd, dir, keysetTOML("default", alg, rsaBits, lead.String()))
	if err != nil {
		return nil, err
	}
	if _, err := keyd.waitReady("/readyz", time.Now()); err != nil {
		return nil, err
	}
	var out []time.Duration
	for range samples {
		kids, err := servedKIDs(keyd.url(jwksPath))
		if err != nil {
			return nil, err
		}
		// The next key was created by the rotation before; let it pass publish_lead so
		// the signal promotes at once instead of deferring.
		time.Sleep(lead + 20*time.Millisecond)
		began := time.Now()
		if err := keyd.signal(syscall.SIGUSR1); err != nil {
			return nil, err
		}
		if err := pollUntil(10*time.Second, func() (bool, error) {
			now, err := servedKIDs(keyd.url(jwksPath))
			return err == nil && now[0] == kids[1], err
		}); err != nil {
			return nil, err
		}
		out = append(out, time.Since(began))
	}
	return out, keyd.stop()
}

// pollUntil calls done until it reports true, an error, or limit passes.
func pollUntil(limit time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done within %s", limit)
		}
	}
}

func servedKIDs(url string) ([]string, error) {
	body, _, err := fetch(url)
	if err != nil {
		return nil, err
	}
	var set struct{ Keys []struct{ KID string } }
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(set.Keys) < 2 {
		return nil, fmt.Errorf("GET %s: %d keys, want current and next", url, len(set.Keys))
	}
	kids := make([]string, len(set.Keys))
	for i, k := range set.Keys {
		kids[i] = k.KID
	}
	return kids, nil
}

// startupTimes starts keyd on a new directory and then again on the same one, n times.
func startupTimes(f httpFlags) (first, again []time.Duration, err error) {
	for range f.starts {
		dir, err := f.workDir("start")
		if err != nil {
			return nil, nil, err
		}
		for _, list := range []*[]time.Duration{&first, &again} {
			began := time.Now()
			keyd, err := startKeyd(f.keyd, dir, keysetTOML("default", "ES256", 0, "1h"))
			if err != nil {
				return nil, nil, err
			}
			d, err := keyd.waitReady("/readyz", began)
			if err != nil {
				return nil, nil, err
			}
			*list = append(*list, d)
			if err := keyd.stop(); err != nil {
				return nil, nil, err
			}
		}
	}
	return first, again, nil
}

// fsOf names the file system type holding dir (or the temp dir).
func fsOf(dir string) string {
	if dir == "" {
		dir = os.TempDir()
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown file system"
	}
	switch st.Type {
	case 0x01021994:
		return "tmpfs"
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("file system type %#x", st.Type)
}
