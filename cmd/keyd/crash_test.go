package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyd-io/keyd/internal/keydtest"
	"github.com/keyd-io/keyd/keys"
	"github.com/keyd-io/keyd/rotation"
)

// crashKills is how many times TestCrashConsistency kills keyd; KEYD_CRASH_KILLS raises it
// (make soak runs 200).
func crashKills(t *testing.T) int {
	n := 12
	if s := os.Getenv("KEYD_CRASH_KILLS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("KEYD_CRASH_KILLS=%q: %v", s, err)
		}
		n = v
	}
	return n
}

// TestCrashConsistency kills keyd with SIGKILL at random moments while it rotates every
// second, and after each restart checks that nothing was lost: exactly one current key,
// current.jwk names it, every published key has its private key, the JWKS is the state,
// and no key left the JWKS before its grace ended.
func TestCrashConsistency(t *testing.T) {
	data := t.TempDir()
	keysetDir := filepath.Join(data, "default")
	const grace = 2 * time.Second
	config := `
[server]
listen = "{{listen}}"
[storage.disk]
dir = "` + data + `"
[[keyset]]
name = "default"
schedule = "@every 1s"
publish_lead = "1s"
token_ttl = "1s"
grace = "2s"
`
	first := keydtest.Start(t, config, keydtest.Options{})
	path, addr := first.Config, first.Addr
	first.Kill()

	h := &history{lastSeen: map[string]observation{}}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	kills := crashKills(t)
	for i := range kills {
		// Half the kills land during start-up (catch-up rotations, orphan sweeps), half
		// while rotating.
		p := keydtest.StartFile(t, path, addr, keydtest.Options{NoWait: true})
		if i%2 == 1 {
			p.WaitReady()
		}
		<-time.After(time.Duration(rng.IntN(1500)) * time.Millisecond)
		p.Kill()

		check := keydtest.StartFile(t, path, addr, keydtest.Options{})
		h.check(t, check, keysetDir, grace)
		check.Kill()
	}

	// After a clean stop every private key on disk is named by the state: orphans left by
	// the kills are gone.
	last := keydtest.StartFile(t, path, addr, keydtest.Options{})
	if code := last.Stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	s := readState(t, keysetDir)
	entries, err := os.ReadDir(filepath.Join(keysetDir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, e := range entries {
		onDisk = append(onDisk, strings.TrimSuffix(e.Name(), ".jwk"))
	}
	var named []string
	for _, k := range s.Keys {
		named = append(named, k.KID)
	}
	slices.Sort(onDisk)
	slices.Sort(named)
	if !slices.Equal(onDisk, named) {
		t.Fatalf("private keys on disk %v, state names %v", onDisk, named)
	}
	t.Logf("survived %d kills; %d keys seen", kills, len(h.lastSeen))
}

type observation struct {
	phase   rotation.Phase
	expires time.Time
	at      time.Time
}

// history remembers every key seen published, to prove none left early.
type history struct {
	lastSeen map[string]observation
}

func (h *history) check(t *testing.T, p *keydtest.Process, dir string, grace time.Duration) {
	t.Helper()
	var s rotation.State
	// The runner may commit between reading the JWKS and the state; take a pair that
	// agrees.
	p.WaitFor("the JWKS and state.json to agree", func() bool {
		_, body := p.Get("/.well-known/jwks.json")
		s = readState(t, dir)
		return slices.Equal(kidsOf(t, body), kidsOfState(s))
	})
	now := time.Now()

	cur := s.InPhase(rotation.Current)
	p.WaitFor("current.jwk to name the current key", func() bool {
		kid, _ := currentKey(t, dir)
		latest := readState(t, dir)
		return kid == cur.KID || latest.InPhase(rotation.Current).KID != cur.KID
	})
	for _, k := range s.Keys {
		data, err := os.ReadFile(filepath.Join(dir, "keys", k.KID+".jwk"))
		if err != nil {
			t.Fatalf("published key %s (%s) has no private key: %v", k.KID, k.Phase, err)
		}
		if parsed, err := keys.ParsePrivateJWK(data); err != nil || parsed.KID != k.KID {
			t.Fatalf("private key of %s unreadable: %v", k.KID, err)
		}
	}
	for kid, seen := range h.lastSeen {
		if s.Find(kid) != nil {
			continue
		}
		early := seen.phase == rotation.Retired && now.Before(seen.expires)
		early = early || (seen.phase != rotation.Retired && now.Sub(seen.at) < grace)
		if early {
			t.Fatalf("key %s (last seen %s, expiring %s) left the JWKS early at %s",
				kid, seen.phase, seen.expires.Format(time.StampMilli), now.Format(time.StampMilli))
		}
	}
	for _, k := range s.Keys {
		h.lastSeen[k.KID] = observation{phase: k.Phase, expires: k.ExpiresAt, at: now}
	}
}

func readState(t *testing.T, dir string) rotation.State {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := rotation.Decode(data, "default")
	if err != nil {
		t.Fatalf("state.json: %v", err)
	}
	return s
}

func kidsOfState(s rotation.State) []string {
	var kids []string
	for _, k := range s.Published() {
		kids = append(kids, k.KID)
	}
	return kids
}

