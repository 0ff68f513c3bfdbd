package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	fs.IntVar(&f.rounds, "rounds", 3, "wrk runs per server, alternating; the median is kept")
	fs.DurationVar(&f.duration, "duration", 5*time.Second, "length of one wrk run")
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
	results := map[string][]wrkResult{}
	for round := 0; round <= f.rounds; round++ {
		for _, s := range []struct {
			name string
			p    *process
		}{{name: "keyd", p: keyd}, {name: "nginx", p: nginx}} {
			l := f.load
			if round == 0 {
				l = warm
			}
			res, err := runWrk(l, s.p.url(jwksPath))
			if err != nil {
				return "", err
			}
			if res.bad > 0 {
				return "", fmt.Errorf("%s: %d errors or bad responses under load", s.name, res.bad)
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
	k, n := median(results["keyd"]), median(results["nginx"])
	row := func(name string, r wrkResult, peak int64) []string {
		return []string{name, fmt.Sprintf("%.0f", r.perSecond), ms(r.p50), ms(r.p75),
			ms(r.p90), ms(r.p99), mib(peak)}
	}
	out := table(
		[]string{"server", "requests/s", "p50", "p75", "p90", "p99", "peak RSS"},
		[][]string{
			row("keyd", k, keydPeak),
			row(strings.TrimPrefix(strings.TrimSpace(string(version)), "nginx version: ")+
				" (all workers)", n, nginxPeak),
		})
	out += fmt.Sprintf("\nkeyd / nginx requests per second: **%.2f**. Each server: median of %d "+
		"wrk runs of %s (%d threads, %d keep-alive connections, `GET %s`, %d-byte ES256 "+
		"JWKS with the same headers), runs alternating between the servers after a 1 s "+
		"warm-up each; wrk shares the cores with the server. Rounds in requests/s: keyd %s; "+
		"nginx %s.\n", k.perSecond/n.perSecond, f.rounds, f.duration, f.threads, f.connections,
		jwksPath, len(body), rates(results["keyd"]), rates(results["nginx"]))
	return out, errors.Join(keyd.stop(), nginx.stop())
}

// median returns the run with the median request rate.
func median(runs []wrkResult) wrkResult {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b wrkResult) int {
		switch {
		case a.perSecond < b.perSecond:
			return -1
		case a.perSecond > b.perSecond:
			return 1
		}
		return 0
	})
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
	total, _, err := memory(pid)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // not a process, or gone
		}
		// pid (comm) state ppid ...; comm may hold spaces, so read after the last ')'.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		var state string
		var ppid int
		if _, err := fmt.Sscan(rest, &state, &ppid); err == nil && ppid == pid {
			var child int
			fmt.Sscan(e.Name(), &child)
			if peak, _, err := memory(child); err == nil {
				total += peak
			}
		}
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
