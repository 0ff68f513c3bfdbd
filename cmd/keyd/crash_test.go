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
	"github.com/keyd-io/keyd/internal/vaulttest"
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

// crashStorage reads what a killed keyd left behind in one backend.
type crashStorage struct {
	name    string
	config  func(t *testing.T) string
	state   func(t *testing.T) rotation.State
	private func(t *testing.T) []string
	current func(t *testing.T) string
	// sweepsOrphans says whether a clean start removes orphans at once (disk) or only
	// once they are older than a few minutes (Vault, where replicas share storage).
	sweepsOrphans bool
}

// rotatingKeyset rotates every second with a two-second grace, so kills land mid-change.
const rotatingKeyset = `
[[keyset]]
name = "default"
schedule = "@every 1s"
publish_lead = "1s"
token_ttl = "1s"
grace = "2s"
`

func diskCrashStorage(t *testing.T) crashStorage {
	data := t.TempDir()
	dir := filepath.Join(data, "default")
	return crashStorage{
		name: "disk",
		config: func(t *testing.T) string {
			return "[server]\nlisten = \"{{listen}}\"\n[storage.disk]\ndir = \"" + data + "\"\n" +
				rotatingKeyset
		},
		state: func(t *testing.T) rotation.State { return readState(t, dir) },
		private: func(t *testing.T) []string {
			entries, err := os.ReadDir(filepath.Join(dir, "keys"))
			if err != nil {
				t.Fatal(err)
			}
			var kids []string
			for _, e := range entries {
				kids = append(kids, strings.TrimSuffix(e.Name(), ".jwk"))
			}
			return kids
		},
		current: func(t *testing.T) string {
			kid, _ := currentKey(t, dir)
			return kid
		},
		sweepsOrphans: true,
	}
}

func vaultCrashStorage(t *testing.T) crashStorage {
	srv := vaulttest.StartDev(t)
	return crashStorage{
		name: "vault",
		config: func(t *testing.T) string {
			cfg := vaultConfig(t, srv, "")
			return cfg[:strings.Index(cfg, "[[keyset]]")] + rotatingKeyset
		},
		state: func(t *testing.T) rotation.State {
			s, _ := storedState(t, srv)
			return s
		},
		private: func(t *testing.T) []string { return storedKIDs(t, srv) },
		current: func(t *testing.T) string { return issuedKID(t, srv) },
	}
}

// TestCrashConsistency kills keyd with SIGKILL at random moments while it rotates every
// second, and after each restart checks that nothing was lost: exactly one current key,
// the issuers' current key names it, every published key has its private key, the JWKS is
// the state, and no key left the JWKS before its grace ended.
func TestCrashConsistency(t *testing.T) {
	for _, storage := range []func(*testing.T) crashStorage{diskCrashStorage, vaultCrashStorage} {
		st := storage(t)
		t.Run(st.name, func(t *testing.T) { crashLoop(t, st) })
	}
}

func crashLoop(t *testing.T, st crashStorage) {
	const grace = 2 * time.Second
	first := keydtest.Start(t, st.config(t), keydtest.Options{})
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
		h.check(t, check, st, grace)
		check.Kill()
	}

	// After a clean stop every private key is named by the state: orphans are gone.
	last := keydtest.StartFile(t, path, addr, keydtest.Options{})
	if code := last.Stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	stored := st.private(t)
	named := kidsIn(st.state(t))
	slices.Sort(stored)
	for _, kid := range named {
		if !slices.Contains(stored, kid) {
			t.Fatalf("state names %s but its private key is gone", kid)
		}
	}
	if st.sweepsOrphans && !slices.Equal(stored, named) {
		t.Fatalf("private keys stored %v, state names %v", stored, named)
	}
	t.Logf("survived %d kills; %d keys seen; %d private keys stored, %d named",
		kills, len(h.lastSeen), len(stored), len(named))
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

func (h *history) check(t *testing.T, p *keydtest.Process, st crashStorage, grace time.Duration) {
	t.Helper()
	var s rotation.State
	// The runner may commit between reading the JWKS and the state; take a pair that
	// agrees.
	p.WaitFor("the JWKS and the stored state to agree", func() bool {
		_, body := p.Get("/.well-known/jwks.json")
		s = st.state(t)
		return slices.Equal(kidsOf(t, body), kidsOfState(s))
	})
	now := time.Now()

	cur := s.InPhase(rotation.Current)
	p.WaitFor("the issuers' current key to name the current key", func() bool {
		latest := st.state(t)
		return st.current(t) == cur.KID || latest.InPhase(rotation.Current).KID != cur.KID
	})
	stored := st.private(t)
	for _, k := range s.Keys {
		if !slices.Contains(stored, k.KID) {
			latest := st.state(t)
			if latest.Find(k.KID) != nil {
				t.Fatalf("published key %s (%s) has no private key", k.KID, k.Phase)
			}
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

// TestCrashDuringFirstStart kills keyd while it creates its very first keys, after the
// first private key is stored and before the first state is written: the next start must
// finish the first start, not refuse the keyset as one whose state was lost.
func TestCrashDuringFirstStart(t *testing.T) {
	for i := range 2 {
		data := t.TempDir()
		keysDir := filepath.Join(data, "default", "keys")
		config := "[server]\nlisten = \"{{listen}}\"\n[storage.disk]\ndir = \"" + data + "\"\n" +
			"[[keyset]]\nname = \"default\"\nalgorithm = \"RS256\"\nrsa_bits = 4096\n"
		p := keydtest.Start(t, config, keydtest.Options{NoWait: true})
		// Generating the second 4096-bit key takes long enough to kill keyd in between.
		p.WaitFor("the first private key to be stored", func() bool {
			entries, _ := os.ReadDir(keysDir)
			return len(entries) > 0
		})
		p.Kill()
		if _, err := os.Stat(filepath.Join(data, "default", "state.json")); err == nil {
			t.Logf("run %d: the kill came after the first state; nothing to check", i)
			continue
		}

		again := keydtest.StartFile(t, p.Config, p.Addr, keydtest.Options{})
		if code := again.Stop(); code != 0 {
			t.Fatalf("run %d: exit %d after restarting an interrupted first start", i, code)
		}
		s := readState(t, filepath.Join(data, "default"))
		entries, err := os.ReadDir(keysDir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(s.Keys) {
			t.Fatalf("run %d: %d private keys on disk, state names %d", i, len(entries), len(s.Keys))
		}
	}
}
