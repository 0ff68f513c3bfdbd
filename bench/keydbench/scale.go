package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"syscall"
	"time"
)

type scaleFlags struct {
	common
	keysets int
	alg     string
}

// sweepLimit bounds the wait for every keyset to serve its new kid after one SIGUSR1.
const sweepLimit = 5 * time.Minute

func benchScale(args []string) (string, error) {
	var f scaleFlags
	fs := flag.NewFlagSet("scale", flag.ExitOnError)
	f.register(fs)
	fs.IntVar(&f.keysets, "keysets", 1000, "keysets in the one keyd")
	fs.StringVar(&f.alg, "alg", "ES256", "algorithm of every keyset")
	if err := fs.Parse(args); err != nil {
		return "", err
	}

	dir, err := f.workDir("scale")
	if err != nil {
		return "", err
	}
	const lead = time.Second
	var config strings.Builder
	names := make([]string, f.keysets)
	for i := range names {
		names[i] = fmt.Sprintf("issuer-%04d", i)
		config.WriteString(keysetTOML(names[i], f.alg, rsaBits(f.alg), lead.String()))
	}

	var rows [][]string
	add := func(what, value string) { rows = append(rows, []string{what, value}) }
	began := time.Now()
	keyd, err := startKeyd(f.keyd, dir, config.String())
	if err != nil {
		return "", err
	}
	firstStart, err := keyd.waitReady("/readyz", began)
	if err != nil {
		return "", err
	}
	add(fmt.Sprintf("first start → /readyz 200 (creates %d keys)", 2*f.keysets), ms(firstStart))
	if err := addMemory(add, keyd, "after first start"); err != nil {
		return "", err
	}

	// One GET of every keyset's JWKS, remembering each next kid.
	next := map[string]string{}
	var gets []time.Duration
	for _, name := range names {
		t := time.Now()
		kids, err := servedKIDs(keyd.url("/keysets/" + name + "/jwks.json"))
		if err != nil {
			return "", err
		}
		gets = append(gets, time.Since(t))
		next[name] = kids[1]
	}
	add(fmt.Sprintf("GET each keyset's JWKS once, one client, p50 / p99 of %d", len(gets)),
		ms(percentile(gets, 50))+" / "+ms(percentile(gets, 99)))

	// Every next key must be publish_lead old, or the sweep would wait for it.
	time.Sleep(time.Until(began.Add(firstStart + lead + 100*time.Millisecond)))
	sweep, err := rotationSweep(keyd, next)
	if err != nil {
		return "", err
	}
	add("SIGUSR1 → first keyset serves its new current kid", ms(percentile(sweep, 0.0001)))
	add("SIGUSR1 → half of the keysets do", ms(percentile(sweep, 50)))
	add("SIGUSR1 → 99% of the keysets do", ms(percentile(sweep, 99)))
	add("SIGUSR1 → all keysets do (the sweep)", ms(percentile(sweep, 100)))
	if err := addMemory(add, keyd, "after the sweep"); err != nil {
		return "", err
	}

	t := time.Now()
	if err := keyd.stop(); err != nil {
		return "", err
	}
	add("SIGTERM → exit", ms(time.Since(t)))
	began = time.Now()
	keyd, err = startKeyd(f.keyd, dir, config.String())
	if err != nil {
		return "", err
	}
	restart, err := keyd.waitReady("/readyz", began)
	if err != nil {
		return "", err
	}
	add(fmt.Sprintf("restart → /readyz 200 (loads %d keysets)", f.keysets), ms(restart))
	if err := addMemory(add, keyd, "after restart"); err != nil {
		return "", err
	}

	section := fmt.Sprintf("## One keyd, %d keysets\n\n", f.keysets) +
		table([]string{"measure", "value"}, rows) +
		fmt.Sprintf("\n%d keysets of %s on local disk (%s), publish_lead %s, in one keyd "+
			"process. The sweep times run from one SIGUSR1 to the first GET of each "+
			"keyset's JWKS that lists its former next key first; one client polls the "+
			"keysets still pending, in turn.\n\nMachine: %s.\n", f.keysets, f.alg, fsOf(f.dir),
			lead, machine()) + command()
	return section, errors.Join(keyd.stop(), writeSection(f.results, "scale", section))
}

func rsaBits(alg string) int {
	if strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS") {
		return 2048
	}
	return 0
}

func addMemory(add func(what, value string), keyd *process, when string) error {
	peak, now, err := memory(keyd.cmd.Process.Pid)
	if err != nil {
		return err
	}
	add("keyd RSS "+when+", now / peak (VmRSS / VmHWM)", mib(now)+" / "+mib(peak))
	return nil
}

// rotationSweep sends one SIGUSR1 and returns, for each keyset, how long it took until
// its JWKS listed next[keyset] first.
func rotationSweep(keyd *process, next map[string]string) ([]time.Duration, error) {
	pending := make(map[string]string, len(next))
	for k, v := range next {
		pending[k] = v
	}
	began := time.Now()
	if err := keyd.signal(syscall.SIGUSR1); err != nil {
		return nil, err
	}
	var done []time.Duration
	for len(pending) > 0 {
		if time.Since(began) > sweepLimit {
			return nil, fmt.Errorf("sweep: %d keysets still on their old key after %s",
				len(pending), sweepLimit)
		}
		for name, want := range pending {
			kids, err := servedKIDs(keyd.url("/keysets/" + name + "/jwks.json"))
			if err != nil {
				return nil, err
			}
			if kids[0] == want {
				done = append(done, time.Since(began))
				delete(pending, name)
			}
		}
	}
	return done, nil
}
